"""The [engine] section: its defaults, one clear line per bad value, the jar default."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign.common.errors import ConfigError
from campaign.config import load_config
from campaign.config.sections import DEFAULT_JDBC_JARS, EngineConfig


def _load(tmp_path: Path, text: str) -> EngineConfig:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path, environ={}).engine


def test_the_default_engine_is_the_database(tmp_path: Path) -> None:
    engine = _load(tmp_path, "")
    assert engine.kind == "sql"
    assert engine.master == "local[*]"
    assert engine.events == "database"


def test_a_spark_engine_with_parquet_events_loads(tmp_path: Path) -> None:
    engine = _load(
        tmp_path,
        '[engine]\nkind = "spark"\nmaster = "sc://spark.internal"\n'
        'events = ["lake/events/", "extra.parquet"]\ndriver_memory = "4g"\n',
    )
    assert engine.kind == "spark"
    assert engine.events == ("lake/events/", "extra.parquet")
    assert engine.driver_memory == "4g"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('kind = "flink"', "engine.kind: "),
        ('master = "locall[2]"', "engine.master: 'locall[2]' is not a Spark master"),
        ('driver_memory = "lots"', "engine.driver_memory: 'lots' is not a JVM memory size"),
        ("events = []", 'engine.events: needs "database" or at least one Parquet path'),
        ("partitions = 0", "engine.partitions: "),
    ],
)
def test_each_bad_value_is_one_line_naming_its_key(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[engine]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    text = str(info.value)
    assert text.startswith(f"{path}: {message}"), text
    assert "\n" not in text


def test_every_bad_value_is_listed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[engine]\nmaster = "x"\ndriver_memory = "y"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "engine.master" in str(info.value) and "engine.driver_memory" in str(info.value)


def test_jars_default_to_the_debian_drivers_that_exist(tmp_path: Path) -> None:
    present = tuple(p for p in DEFAULT_JDBC_JARS if Path(p).is_file())
    assert EngineConfig().jar_paths() == present
    assert EngineConfig(jars=("a.jar",)).jar_paths() == ("a.jar",)
