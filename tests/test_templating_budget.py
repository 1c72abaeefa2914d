"""The output budget as it streams: batched, but exact in UTF-8 bytes and never
waiting for the end of a runaway stream."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from campaign.common.errors import TemplateError
from campaign.templating.context import sample_context
from campaign.templating.environment import (
    RenderBudget,
    RenderLimitExceeded,
    budget_scope,
    make_environment,
)
from campaign.templating.render import render_template


def _render(tmp_path: Path, source: str, max_output_bytes: int) -> str:
    folder = tmp_path / "t" / "en"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "x.txt").write_text(source, encoding="utf-8")
    env = make_environment(tmp_path, display_root="templates", max_output_bytes=max_output_bytes)
    return render_template(env, "t/en/x.txt", sample_context("en"))


@pytest.mark.parametrize(
    "source",
    ['{{ "中" * COUNT }}', "{% for i in range(COUNT) %}中{% endfor %}"],
    ids=["one_chunk", "many_chunks"],
)
def test_the_output_budget_counts_utf8_bytes_to_the_byte(tmp_path: Path, source: str) -> None:
    # 1,000 bytes hold 333 three-byte characters, not 334 (nor 1,000 characters).
    assert _render(tmp_path, source.replace("COUNT", "333"), 1_000) == "中" * 333
    with pytest.raises(TemplateError, match="refused: output is larger than 1000 bytes"):
        _render(tmp_path, source.replace("COUNT", "334"), 1_000)


def test_ascii_output_up_to_the_budget_is_kept_whole(tmp_path: Path) -> None:
    text = _render(tmp_path, "{% for i in range(500) %}ab{% endfor %}", 1_000)
    assert text == "ab" * 500


def test_an_endless_stream_is_stopped_while_it_streams() -> None:
    budget = RenderBudget(max_output_bytes=10_000)
    with budget_scope(budget), pytest.raises(RenderLimitExceeded):
        budget.collect(itertools.repeat("x"))
    assert budget.chunks <= 10_000 + 64  # stopped within one batch of the limit


def test_an_endless_stream_of_empty_chunks_runs_out_of_time() -> None:
    budget = RenderBudget(timeout_seconds=0.05)
    with budget_scope(budget), pytest.raises(RenderLimitExceeded, match="took longer"):
        budget.collect("" for _ in itertools.count())


def test_one_budget_counts_every_file_of_a_message_to_the_byte() -> None:
    budget = RenderBudget(max_output_bytes=1_000)
    with budget_scope(budget):
        for _ in range(3):  # 3 x 300 bytes fit
            assert budget.collect(iter(["中" * 50, "中" * 50])) == "中" * 100
        assert budget.used_bytes() == 900
        with pytest.raises(RenderLimitExceeded):
            budget.collect(iter(["中" * 40]))  # 120 more bytes do not
