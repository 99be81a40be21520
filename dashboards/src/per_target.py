"""The per-target dashboard: the Last AOF Rewrite Status card and its sibling signals.

Panels filter on `$job` and `$target`; tests/dashboard_queries.rs runs every query here against
a real Prometheus scraping the real exporter.
"""

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from common import (
    FLEET_UID,
    GREY,
    PER_TARGET_UID,
    base_dashboard,
    job_variable,
    label_values_variable,
    link_to,
    query,
    row,
    stat_panel,
    thresholds,
    timeseries_panel,
    value_map,
)

BACKGROUND = common.BigValueColorMode.BACKGROUND


def sel(name: str, extra: str = "") -> str:
    """`name{job=~"$job", target=~"$target"[, extra]}`."""
    more = f", {extra}" if extra else ""
    return f'{name}{{job=~"$job", target=~"$target"{more}}}'


CARD_ERR = sel("redis_aof_rewrite_state", 'state="err"')
CARD_OK = sel("redis_aof_rewrite_state", 'state="ok"')
CARD = (
    f"2 * max without (state) ({CARD_ERR})\n"
    f"  + max without (state) ({CARD_OK})\n"
    "or\n"
    f"  ({sel('redis_up')} == 0) - 1"
)

WRITE_STATUS = (
    f"{sel('redis_aof_last_write_status')} * {sel('redis_aof_enabled')}\n"
    f"  + 2 * (1 - {sel('redis_aof_enabled')})"
)

OK_ERR = value_map(("1", "ok", "green"), ("0", "err", "red"))
UP_DOWN = value_map(("1", "up", "green"), ("0", "down", "red"))


def card_row() -> list:
    return [
        stat_panel(
            2,
            "Last AOF Rewrite Status",
            "Did the most recent AOF rewrite (BGREWRITEAOF, automatic or manual) finish cleanly? "
            "From aof_last_bgrewrite_status, keyed off aof_enabled: ok (green), err (red: the AOF "
            "is no longer being compacted; find out why before the next restart depends on it), "
            "n/a (grey: AOF is off, any stale err is ignored). A running rewrite does not change "
            "it; the card shows the last completed one. 'unreachable' (orange): the exporter "
            "cannot poll this Redis, so the status is unknown.",
            8,
            7,
            BACKGROUND,
        )
        .with_target(query(CARD))
        .mappings(
            [
                value_map(
                    ("2", "err", "red"),
                    ("1", "ok", "green"),
                    ("0", "n/a", GREY),
                    ("-1", "unreachable", "orange"),
                )
            ]
        )
        .thresholds(thresholds((None, GREY)))
        .unit("none")
        .no_value("no data"),
        stat_panel(
            3,
            "AOF last write status",
            "aof_last_write_status: did the latest append/fsync to the AOF reach disk? err means "
            "recent writes may be lost and Redis refuses writes (a data-loss risk, unlike a "
            "rewrite err). n/a while AOF is off.",
            4,
            7,
            BACKGROUND,
        )
        .with_target(query(WRITE_STATUS))
        .mappings([value_map(("1", "ok", "green"), ("0", "err", "red"), ("2", "n/a", GREY))])
        .thresholds(thresholds((None, GREY)))
        .unit("none"),
        stat_panel(
            4,
            "Rewrite running now",
            "aof_rewrite_in_progress. While a rewrite runs the card still shows the previous "
            "outcome.",
            4,
            7,
        )
        .with_target(query(sel("redis_aof_rewrite_in_progress")))
        .mappings([value_map(("0", "idle", "text"), ("1", "running", "blue"))])
        .thresholds(thresholds((None, "text")))
        .unit("none"),
        stat_panel(
            5,
            "Rewrite stuck",
            "1 once an err has survived a further rewrite attempt: it will not clear by itself "
            "(the file keeps growing, so each retry needs more disk). A single err that recovered "
            "on the next rewrite is transient and does not count.",
            4,
            7,
            BACKGROUND,
        )
        .with_target(query(sel("redis_aof_rewrite_stuck")))
        .mappings([value_map(("0", "no", "green"), ("1", "stuck", "red"))])
        .thresholds(thresholds((None, "green"), (1, "red")))
        .unit("none"),
        stat_panel(
            6,
            "Consecutive failed rewrites",
            "aof_rewrites_consecutive_failures (Redis 7.0+): rewrites in a row whose child ran "
            "and failed. Resets on the next successful rewrite.",
            4,
            7,
            BACKGROUND,
        )
        .with_target(query(sel("redis_aof_rewrites_consecutive_failures")))
        .mappings([])
        .thresholds(thresholds((None, "green"), (1, "orange"), (2, "red")))
        .unit("none")
        .decimals(0),
    ]


def aof_row() -> list:
    return [
        timeseries_panel(
            8,
            "AOF size: current vs base",
            "aof_current_size against aof_base_size (the size after the last successful "
            "rewrite). A current size that keeps climbing and never resets toward the base "
            "confirms that rewrites are failing and the file is not being compacted.",
            12,
            8,
        )
        .with_target(query(sel("redis_aof_current_size_bytes"), "{{target}} current", "A"))
        .with_target(query(sel("redis_aof_base_size_bytes"), "{{target}} base", "B"))
        .unit("bytes")
        .thresholds(thresholds((None, "green"))),
        timeseries_panel(
            9,
            "AOF growth ratio (current / base)",
            "aof_current_size / aof_base_size. Redis rewrites automatically when the file has "
            "grown by auto-aof-rewrite-percentage (default 100, i.e. a ratio of 2, the dashed "
            "line). Far above the line and rising means rewrites are failing or never attempted.",
            12,
            8,
            common.GraphThresholdsStyleMode.DASHED,
        )
        .with_target(query(sel("redis_aof_growth_ratio")))
        .unit("none")
        .thresholds(thresholds((None, "green"), (2, "orange")))
        .decimals(2),
        timeseries_panel(
            10,
            "Rewrite attempts and consecutive failures",
            "Rewrites started per interval (from aof_rewrites) next to "
            "aof_rewrites_consecutive_failures. Attempts with failures climbing and no reset is "
            "an err that is not self-healing.",
            8,
            8,
        )
        .with_target(
            query(
                f"increase({sel('redis_aof_rewrites_total')}[$__rate_interval])",
                "{{target}} rewrites started",
                "A",
            )
        )
        .with_target(
            query(
                sel("redis_aof_rewrites_consecutive_failures"),
                "{{target}} consecutive failures",
                "B",
            )
        )
        .unit("none")
        .thresholds(thresholds((None, "green")))
        .decimals(0),
        timeseries_panel(
            11,
            "Last rewrite duration",
            "aof_last_rewrite_time_sec: how long the last rewrite took. Absent until a rewrite "
            "ran.",
            8,
            8,
        )
        .with_target(query(sel("redis_aof_last_rewrite_duration_seconds")))
        .unit("s")
        .thresholds(thresholds((None, "green"))),
        timeseries_panel(
            12,
            "Last rewrite copy-on-write memory",
            "aof_last_cow_size: memory the rewrite child copied while the parent kept writing. "
            "Large values under write load can starve the fork the next rewrite needs.",
            8,
            8,
        )
        .with_target(query(sel("redis_aof_last_cow_size_bytes")))
        .unit("bytes")
        .thresholds(thresholds((None, "green"))),
    ]


def sibling_row() -> list:
    return [
        stat_panel(
            14,
            "Last RDB save (age)",
            "Time since the last successful RDB save (rdb_last_save_time). With AOF failing, a "
            "recent RDB save means a fallback restore point still exists. The per-target stale "
            "threshold is redis_rdb_max_age_seconds (exporter config rdb_max_age, default 24h).",
            4,
            6,
        )
        .with_target(query(f"time() - {sel('redis_rdb_last_save_timestamp_seconds')}"))
        .thresholds(thresholds((None, "green"), (3600, "orange"), (86400, "red")))
        .unit("s"),
        stat_panel(
            15,
            "Last RDB save status",
            "rdb_last_bgsave_status: the other persistence mechanism, a separate concern from "
            "the AOF card.",
            4,
            6,
            BACKGROUND,
        )
        .with_target(query(sel("redis_rdb_last_bgsave_status")))
        .mappings([OK_ERR])
        .thresholds(thresholds((None, GREY)))
        .unit("none"),
        stat_panel(
            16,
            "Memory used vs maxmemory",
            "used_memory / maxmemory. Near the limit, the fork() a rewrite needs can fail: an AOF "
            "err with memory high points at fork headroom, not disk. Empty when maxmemory is not "
            "set.",
            4,
            6,
        )
        .with_target(query(sel("redis_memory_used_maxmemory_ratio")))
        .thresholds(thresholds((None, "green"), (0.8, "orange"), (0.9, "red")))
        .unit("percentunit")
        .no_value("no maxmemory")
        .decimals(1),
        stat_panel(
            17,
            "Memory fragmentation ratio",
            "mem_fragmentation_ratio. Copy-on-write during a rewrite can spike RSS and "
            "fragmentation.",
            4,
            6,
        )
        .with_target(query(sel("redis_mem_fragmentation_ratio")))
        .thresholds(thresholds((None, "green"), (1.5, "orange"), (2, "red")))
        .unit("none")
        .decimals(2),
        stat_panel(
            18,
            "Instance uptime",
            "uptime_in_seconds. A short uptime after an err may mean a slow AOF-load restart just "
            "happened.",
            4,
            6,
        )
        .with_target(query(sel("redis_uptime_in_seconds")))
        .thresholds(thresholds((None, "orange"), (3600, "green")))
        .unit("s"),
        stat_panel(
            19,
            "Connected replicas",
            "connected_slaves. A healthy in-sync replica keeps a live copy of the data even when "
            "the primary's AOF rewrite fails.",
            4,
            6,
        )
        .with_target(query(sel("redis_connected_slaves")))
        .thresholds(thresholds((None, "text")))
        .unit("none")
        .decimals(0),
    ]


def health_row() -> list:
    return [
        stat_panel(
            21,
            "Free disk (persistence dir)",
            "Free bytes on the filesystem holding the Redis data directory (exporter config "
            "data_dir; needs the exporter on the Redis host). A full volume is the most common "
            "reason a rewrite fails, and a failing rewrite grows the file, so check this first.",
            8,
            4,
        )
        .with_target(query(sel("redis_persistence_dir_free_bytes")))
        .thresholds(thresholds((None, "red"), (1073741824, "orange"), (5368709120, "green")))
        .unit("bytes")
        .no_value("data_dir not configured"),
        stat_panel(
            22,
            "Redis reachable (redis_up)",
            "1 if the exporter's last poll of this Redis succeeded. While 0, no persistence "
            "series are reported for the target: silence is never shown as healthy.",
            8,
            4,
            BACKGROUND,
        )
        .with_target(query(sel("redis_up")))
        .mappings([UP_DOWN])
        .thresholds(thresholds((None, GREY)))
        .unit("none"),
        stat_panel(
            23,
            "Exporter scraped (up)",
            "Prometheus's own up series for the exporter's scrape job.",
            8,
            4,
            BACKGROUND,
        )
        .with_target(query('up{job=~"$job"}', "{{instance}}"))
        .mappings([UP_DOWN])
        .thresholds(thresholds((None, GREY)))
        .unit("none"),
    ]


def dashboard() -> dashboard_builder.Dashboard:
    board = (
        base_dashboard(
            "Redis persistence",
            PER_TARGET_UID,
            "Redis persistence health from redis-persistence-exporter: the Last AOF Rewrite "
            "Status card and its sibling signals.",
        )
        .with_variable(job_variable())
        .with_variable(
            label_values_variable(
                "target", "Target", 'label_values(redis_up{job=~"$job"}, target)'
            )
        )
        .link(
            link_to(
                "Fleet overview",
                FLEET_UID,
                "Every target at once, worst first",
            )
        )
    )
    sections = [
        (1, "Last AOF Rewrite Status", card_row()),
        (7, "AOF size and rewrites", aof_row()),
        (13, "Sibling cards", sibling_row()),
        (20, "Disk and scrape health", health_row()),
    ]
    for row_id, title, panels in sections:
        board = board.with_row(row(row_id, title))
        for panel in panels:
            board = board.with_panel(panel)
    return board
