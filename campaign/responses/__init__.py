"""Response intake: provider webhooks and unsubscribe links → ``responses``,
``messages.engagement`` and ``suppressions`` (see docs/responses.md).

Importing the package does nothing: whoever imports one module of it (the importer,
:mod:`campaign.responses.recording`) must not pay for the server.
"""

from __future__ import annotations
