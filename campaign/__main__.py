"""``python -m campaign`` runs the command line."""

from __future__ import annotations

from campaign.cli import main

main()
