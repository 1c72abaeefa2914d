"""The tables Spark reads: over JDBC from the product's database, events also from
Parquet. Every timestamp becomes UTC epoch microseconds (``*_us``, 64-bit integers),
so comparisons with as-of cut-offs are exact and the same on every database.

SQLite stores timestamps as naive-UTC text and MariaDB as ``DATETIME(6)``: both are
read as text and parsed by Spark in its UTC session time zone (a JDBC driver's own
conversion would use the JVM's zone, or drop the microseconds on SQLite).
PostgreSQL's ``timestamptz`` arrives as an instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from campaign.common.errors import EngineError
from campaign.config import EngineConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_DRIVERS = {
    "sqlite": "org.sqlite.JDBC",
    "postgresql": "org.postgresql.Driver",
    "mysql": "org.mariadb.jdbc.Driver",
}


@dataclass(frozen=True)
class Jdbc:
    """How Spark reaches the product's database: URL, driver class, properties."""

    url: str
    driver: str
    dialect: str
    user: str | None = None
    password: str | None = None

    def options(self) -> dict[str, str]:
        """The reader/writer options of ``format("jdbc")`` (without the table)."""
        values = {"url": self.url, "driver": self.driver}
        if self.user is not None:
            values["user"] = self.user
        if self.password is not None:
            values["password"] = self.password
        return values


def jdbc_of(database_url: str) -> Jdbc:
    """The JDBC URL of a SQLAlchemy URL: ``sqlite:///PATH`` → ``jdbc:sqlite:PATH``,
    ``postgresql://…`` → ``jdbc:postgresql://host:port/db``, ``mysql+pymysql://…`` →
    ``jdbc:mysql://host:port/db`` (read by the MariaDB connector, which speaks to MySQL 8 too).

    Raises:
        EngineError: an in-memory SQLite database (Spark cannot share it) or a
            database kind without a JDBC driver here.
    """
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise EngineError("the spark engine needs a SQLite file, not an in-memory database")
        return Jdbc(f"jdbc:sqlite:{url.database}", _DRIVERS["sqlite"], "sqlite")
    if backend not in ("postgresql", "mysql"):
        raise EngineError(f"the spark engine cannot read {backend} databases over JDBC")
    # jdbc:mysql: (which the MariaDB connector accepts) so that Spark picks its MySQL
    # dialect: back-quoted identifiers, where the generic one's "id" is a string.
    scheme = "postgresql" if backend == "postgresql" else "mysql"
    default_port = 5432 if backend == "postgresql" else 3306
    location = f"{url.host or 'localhost'}:{url.port or default_port}"
    query = ""
    if backend == "mysql":
        # Four-byte UTF-8 (emoji, rare CJK) both ways, whatever the server's default.
        query = "?useUnicode=true&characterEncoding=utf8"
    return Jdbc(
        f"jdbc:{scheme}://{location}/{url.database or ''}{query}",
        _DRIVERS[backend],
        backend,
        url.username,
        url.password if isinstance(url.password, str) else None,
    )


def _timestamp_sql(dialect: str, column: str) -> str:
    if dialect == "sqlite":
        return f"CAST({column} AS TEXT) AS {column}"
    if dialect == "mysql":
        return f"CAST({column} AS CHAR) AS {column}"
    return column


def read_table(
    spark: SparkSession,
    jdbc: Jdbc,
    table: str,
    columns: tuple[str, ...],
    timestamps: tuple[str, ...] = (),
    *,
    where: str = "",
    split: tuple[str, int, int, int] | None = None,
) -> DataFrame:
    """``columns`` of ``table`` (``WHERE where``), each of ``timestamps`` as ``NAME_us``.

    ``split`` is ``(column, lowest, highest, partitions)``: parallel reads of ranges
    of an integer column (the events' id), one connection each.
    """
    from pyspark.sql import functions as F

    selected = ", ".join(
        _timestamp_sql(jdbc.dialect, c) if c in timestamps else c for c in columns
    )
    sql = f"(SELECT {selected} FROM {table}{' WHERE ' + where if where else ''}) t"
    reader = spark.read.format("jdbc").options(**jdbc.options()).option("dbtable", sql)
    reader = reader.option("fetchsize", "10000")
    if timestamps and jdbc.dialect != "postgresql":
        # The driver guesses a text expression's type from its first value (SQLite
        # reports a decimal): read the timestamps as the strings they are.
        names = [c.split(" AS ")[-1] for c in columns]
        reader = reader.option(
            "customSchema", ", ".join(f"{c} STRING" for c in timestamps if c in names)
        )
    if split is not None and split[3] > 1 and split[2] > split[1]:
        column, low, high, parts = split
        reader = reader.options(
            partitionColumn=column, lowerBound=str(low), upperBound=str(high + 1),
            numPartitions=str(parts),
        )
    frame = reader.load()
    for column in timestamps:
        frame = frame.withColumn(
            f"{column}_us", F.unix_micros(F.col(column).cast("timestamp"))
        ).drop(column)
    return frame


def _id_range(engine: Engine, table: str) -> tuple[int, int]:
    with engine.connect() as connection:
        low, high = connection.execute(text(f"SELECT MIN(id), MAX(id) FROM {table}")).one()
    return int(low or 0), int(high or 0)


EVENT_COLUMNS = (
    "id", "user_id", "product_id", "type", "ts", "order_id", "amount_cents", "coupon_code",
)


def events_frame(spark: SparkSession, engine: Engine, config: EngineConfig,
                 base_dir: str = ".") -> DataFrame:
    """Every event: ``id``, ``user_id``, ``product_id``, ``type``, ``ts_us``,
    ``order_id``, ``amount_cents``, ``coupon_code`` (integers as 64-bit).

    From the events table over JDBC.

    Raises:
        EngineError: ``[engine] events`` names Parquet paths: the Spark engine reads
            events from the database only so far (import the files with ``campaign
            import events`` first).
    """
    from pyspark.sql import functions as F

    if config.events != "database":
        raise EngineError(
            "the spark engine reads events from the database only so far: import the "
            "Parquet files with `campaign import events`, or set [engine] events = "
            '"database"'
        )
    jdbc = jdbc_of(engine.url.render_as_string(hide_password=False))
    low, high = _id_range(engine, "events")
    frame = read_table(
        spark, jdbc, "events", EVENT_COLUMNS, ("ts",), split=("id", low, high, config.partitions)
    )
    return frame.select(
        F.col("id").cast("long"), F.col("user_id").cast("long"),
        F.col("product_id").cast("long"), F.col("type").cast("string"), "ts_us",
        F.col("order_id").cast("string"), F.col("amount_cents").cast("long"),
        F.col("coupon_code").cast("string"),
    )


@dataclass(frozen=True)
class Tables:
    """The Spark frames of one batch step, read once and shared by its queries."""

    events: DataFrame
    users: DataFrame  # id, created_at_us, locale
    products: DataFrame  # id, category
    messages: DataFrame  # user_id, status, sent_at_us, created_at_us, engagement, …
    coupons: DataFrame  # user_id, issued_at_us, redeemed_at_us


def load_tables(
    spark: SparkSession, engine: Engine, config: EngineConfig, base_dir: str = "."
) -> Tables:
    """The frames the batch reads (lazily: nothing runs until a query needs it)."""
    from pyspark.sql import functions as F

    jdbc = jdbc_of(engine.url.render_as_string(hide_password=False))
    users = read_table(spark, jdbc, "users", ("id", "created_at", "locale"), ("created_at",))
    products = read_table(spark, jdbc, "products", ("id", "category"))
    # Booleans differ per database (SQLite and MariaDB store integers): one 0/1 column.
    messages = read_table(
        spark, jdbc, "messages",
        ("user_id", "status", "sent_at", "created_at", "engagement", "engagement_at",
         "CASE WHEN is_test IS NULL THEN 0 WHEN is_test THEN 1 ELSE 0 END AS is_test"),
        ("sent_at", "created_at", "engagement_at"),
    )
    coupons = read_table(
        spark, jdbc, "coupons", ("user_id", "issued_at", "redeemed_at"),
        ("issued_at", "redeemed_at"),
    )
    return Tables(
        events=events_frame(spark, engine, config, base_dir),
        users=users.withColumn("id", F.col("id").cast("long")),
        products=products.withColumn("id", F.col("id").cast("long")),
        messages=messages.withColumn("user_id", F.col("user_id").cast("long")),
        coupons=coupons.withColumn("user_id", F.col("user_id").cast("long")),
    )
