"""The fleet overview: how many targets are in each card state, which are worst, since when.

Filters on `$job` only. The worst-first table links each target to the per-target dashboard.
A backup-age column joins the table once the exporter exports
`redis_backup_last_success_timestamp_seconds`; the generator uses only series that exist.
"""

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import statetimeline, table
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from common import (
    DATASOURCE,
    FLEET_UID,
    GREY,
    PER_TARGET_UID,
    base_dashboard,
    color_by,
    job_variable,
    link_to,
    query,
    row,
    stat_panel,
    table_query,
    thresholds,
    timeseries_panel,
    value_map,
)


def sel(name: str, extra: str = "") -> str:
    """`name{job=~"$job"[, extra]}`."""
    more = f", {extra}" if extra else ""
    return f'{name}{{job=~"$job"{more}}}'


def card(state: str) -> str:
    return sel("redis_aof_rewrite_state", f'state="{state}"')


# 1 where the card is err, 0 where it is ok or n/a; absent while the target is down.
CARD_ERR = f"max without (state) ({card('err')})"

# Same encoding as the per-target card: 2 err, 1 ok, 0 n/a, -1 unreachable.
CARD = (
    f"2 * {CARD_ERR}\n"
    f"  + max without (state) ({card('ok')})\n"
    "or\n"
    f"  ({sel('redis_up')} == 0) - 1"
)

# Worst first: 4 writes failing (data-loss risk), 3 rewrite stuck, 2 unreachable, 1 card err,
# 0 fine. Each `or` branch only adds targets the branches before it did not match.
RANK = (
    f"  4 * ({sel('redis_aof_enabled')} == 1 and {sel('redis_aof_last_write_status')} == 0)\n"
    f"or 3 * ({sel('redis_aof_rewrite_stuck')} == 1 and {CARD_ERR} == 1)\n"
    f"or ({sel('redis_up')} == 0) + 2\n"
    f"or {CARD_ERR}\n"
    f"or 0 * {sel('redis_up')}"
)


def cause(mechanism: str) -> str:
    return sel("redis_persistence_failure_reason", f'mechanism="{mechanism}"')


# The most serious probable cause per target: a failing write over a failing rewrite over a
# failing BGSAVE.
CAUSE = (
    "topk without (mechanism, reason) (1,\n"
    f"    3 * {cause('aof_write')}\n"
    f"  or 2 * {cause('aof_rewrite')}\n"
    f"  or {cause('rdb_bgsave')}\n"
    ")"
)

WRITE_STATUS = (
    f"{sel('redis_aof_last_write_status')} * {sel('redis_aof_enabled')}\n"
    f"  + 2 * (1 - {sel('redis_aof_enabled')})"
)

OVERDUE = f"{sel('redis_aof_rewrite_overdue')} == 1"

CARD_MAP = value_map(
    ("2", "err", "red"),
    ("1", "ok", "green"),
    ("0", "n/a", GREY),
    ("-1", "unreachable", "orange"),
)

PER_TARGET_LINK = (
    f"/d/{PER_TARGET_UID}?${{job:queryparam}}&var-target=${{__data.fields.target}}"
    "&${__url_time_range}"
)


def rows_by_label_set(organize: dict) -> list:
    """Joins a table's queries (one per column) into one row per label set, then organizes
    the columns with `organize`. Series names differ per query and would keep the merge from
    joining rows, so they are dropped first."""
    return [
        model.DataTransformerConfig(
            id_val="organize", options={"excludeByName": {"__name__": True}}
        ),
        model.DataTransformerConfig(id_val="merge", options={}),
        model.DataTransformerConfig(id_val="organize", options=organize),
    ]


def count_panel(panel_id: int, title: str, description: str, expr: str, steps) -> object:
    """A count of targets with its trend as a sparkline."""
    return (
        stat_panel(
            panel_id,
            title,
            description,
            4,
            5,
            common.BigValueColorMode.VALUE,
            common.BigValueGraphMode.AREA,
        )
        .text_mode(common.BigValueTextMode.VALUE)
        .with_target(query(f"{expr} or vector(0)", title))
        .thresholds(thresholds(*steps))
        .unit("none")
        .decimals(0)
    )


def counts_row() -> list:
    return [
        count_panel(
            2,
            "ok",
            "Targets whose last AOF rewrite finished cleanly.",
            f"count({card('ok')} == 1)",
            [(None, "green")],
        ),
        count_panel(
            3,
            "err",
            "Targets whose last AOF rewrite failed, stuck or not: the AOF is not being compacted.",
            f"count({card('err')} == 1)",
            [(None, "green"), (1, "red")],
        ),
        count_panel(
            4,
            "stuck",
            "Targets whose err survived a further rewrite attempt (a subset of err): it will not "
            "clear by itself.",
            f"count({sel('redis_aof_rewrite_stuck')} == 1 and {CARD_ERR} == 1)",
            [(None, "green"), (1, "red")],
        ),
        count_panel(
            5,
            "n/a",
            "Targets with AOF off: the card does not apply (watch their RDB saves).",
            f"count({card('not_applicable')} == 1)",
            [(None, GREY)],
        ),
        count_panel(
            6,
            "unknown (down)",
            "Targets the exporter cannot poll (redis_up 0): their persistence state is unknown.",
            f"count({sel('redis_up')} == 0)",
            [(None, "green"), (1, "orange")],
        ),
        count_panel(
            7,
            "targets",
            "Every target the exporters of the selected jobs poll.",
            f"count({sel('redis_up')})",
            [(None, "text")],
        ),
    ]


def cell_background() -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"})


def mappings(value_mapping: model.ValueMap) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="mappings", value=[value_mapping])


def worst_first_table() -> table.Panel:
    columns = {
        "Value #A": "status",
        "Value #B": "card",
        "Value #C": "card since",
        "Value #D": "stuck",
        "mechanism": "failing",
        "reason": "probable cause",
        "Value #F": "writes",
        "Value #G": "last RDB save",
    }
    order = ["target", *columns.values(), "job", "instance"]
    return (
        table.Panel()
        .id(9)
        .title("Targets, worst first")
        .description(
            "One row per target, worst first: writes failing, then rewrite stuck, unreachable, "
            "card err, fine. The target's own labels (from the exporter config) follow as "
            "columns. Click a target for its dashboard."
        )
        .datasource(DATASOURCE)
        .span(24)
        .height(10)
        .with_target(table_query(RANK, "A"))
        .with_target(table_query(CARD, "B"))
        .with_target(
            table_query(f"{sel('redis_aof_rewrite_state_since_timestamp_seconds')} * 1000", "C")
        )
        .with_target(table_query(sel("redis_aof_rewrite_stuck"), "D"))
        .with_target(table_query(CAUSE, "E"))
        .with_target(table_query(WRITE_STATUS, "F"))
        .with_target(
            table_query(f"time() - {sel('redis_rdb_last_save_timestamp_seconds')}", "G")
        )
        .transformations(
            rows_by_label_set(
                {
                    "excludeByName": {"Time": True, "Value #E": True},
                    "renameByName": columns,
                    "indexByName": {
                        name: index
                        for index, name in enumerate(
                            ["target", *columns.keys(), "job", "instance"]
                        )
                    },
                }
            )
        )
        .sort_by([common_builder.TableSortByFieldState().display_name("status").desc(True)])
        .filterable(True)
        .cell_height(common.TableCellHeight.SM)
        .color_scheme(color_by(model.FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds((None, "text")))
        .override_by_name(
            "target",
            [
                model.DynamicConfigValue(
                    id_val="links",
                    value=[
                        {
                            "title": "Open ${__data.fields.target} in the per-target dashboard",
                            "url": PER_TARGET_LINK,
                        }
                    ],
                )
            ],
        )
        .override_by_name(
            order[1],
            [
                mappings(
                    value_map(
                        ("4", "writes failing", "dark-red"),
                        ("3", "stuck", "red"),
                        ("2", "unreachable", "orange"),
                        ("1", "err", "light-red"),
                        ("0", "fine", "green"),
                    )
                ),
                cell_background(),
            ],
        )
        .override_by_name("card", [mappings(CARD_MAP), cell_background()])
        .override_by_name("card since", [model.DynamicConfigValue(id_val="unit", value="dateTimeFromNow")])
        .override_by_name(
            "stuck", [mappings(value_map(("0", "no", "green"), ("1", "stuck", "red")))]
        )
        .override_by_name(
            "writes",
            [mappings(value_map(("1", "ok", "green"), ("0", "err", "red"), ("2", "n/a", GREY)))],
        )
        .override_by_name(
            "last RDB save",
            [
                model.DynamicConfigValue(id_val="unit", value="s"),
                model.DynamicConfigValue(
                    id_val="thresholds",
                    value=thresholds((None, "green"), (3600, "orange"), (86400, "red")).build(),
                ),
                model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ],
        )
    )


def err_timeline() -> statetimeline.Panel:
    return (
        statetimeline.Panel()
        .id(10)
        .title("Card err over time (targets that had one in the range)")
        .description(
            "The card of every target that was err at some point in the shown range: red err, "
            "green not err (ok or n/a), orange unreachable."
        )
        .datasource(DATASOURCE)
        .span(24)
        .height(8)
        .with_target(
            query(
                "(\n"
                f"    {CARD_ERR}\n"
                f"  or ({sel('redis_up')} == 0) - 1\n"
                ")\n"
                "and\n"
                f"  max without (state) (max_over_time({card('err')}[$__range] @ end())) == 1"
            )
        )
        .mappings(
            [value_map(("1", "err", "red"), ("0", "not err", "green"), ("-1", "unreachable", "orange"))]
        )
        .thresholds(thresholds((None, GREY)))
        .color_scheme(color_by(model.FieldColorModeId.THRESHOLDS))
        .merge_values(True)
        .show_value(common.VisibilityMode.NEVER)
        .row_height(0.9)
        .fill_opacity(70)
        .line_width(0)
        .no_value("no target had an err card in this range")
    )


def aof_row() -> list:
    return [
        timeseries_panel(
            12,
            "AOF growth ratio, top 10",
            "aof_current_size / aof_base_size of the ten targets with the largest ratio at the "
            "end of the range. Redis rewrites at 1 + auto-aof-rewrite-percentage / 100 (2 by "
            "default, the dashed line).",
            12,
            8,
            common.GraphThresholdsStyleMode.DASHED,
        )
        .with_target(
            query(
                f"{sel('redis_aof_growth_ratio')}\n"
                f"  and topk(10, {sel('redis_aof_growth_ratio')} @ end())"
            )
        )
        .unit("none")
        .decimals(2)
        .thresholds(thresholds((None, "green"), (2, "orange"))),
        table.Panel()
        .id(13)
        .title("Past their rewrite threshold")
        .description(
            "Targets past their own auto-aof-rewrite threshold with no rewrite running "
            "(redis_aof_rewrite_overdue): the AOF is not being compacted. "
            "RedisAOFGrowingUncompacted fires when this lasts 15 minutes and the file still "
            "grows."
        )
        .datasource(DATASOURCE)
        .span(12)
        .height(8)
        .with_target(table_query(f"{sel('redis_aof_growth_ratio')} and {OVERDUE}", "A"))
        .with_target(
            table_query(
                f"1 + {sel('redis_config_aof_rewrite_percentage')} / 100 and {OVERDUE}", "B"
            )
        )
        .with_target(table_query(f"{sel('redis_aof_current_size_bytes')} and {OVERDUE}", "C"))
        .with_target(
            table_query(f"{sel('redis_config_aof_rewrite_min_size_bytes')} and {OVERDUE}", "D")
        )
        .transformations(
            rows_by_label_set(
                {
                    "excludeByName": {"Time": True},
                    "renameByName": {
                        "Value #A": "growth ratio",
                        "Value #B": "rewrites at ratio",
                        "Value #C": "AOF size",
                        "Value #D": "rewrite min size",
                    },
                }
            )
        )
        .sort_by([common_builder.TableSortByFieldState().display_name("growth ratio").desc(True)])
        .override_by_name("target", [model.DynamicConfigValue(
            id_val="links",
            value=[{"title": "Open ${__data.fields.target}", "url": PER_TARGET_LINK}],
        )])
        .override_by_name("growth ratio", [model.DynamicConfigValue(id_val="decimals", value=2)])
        .override_by_name("rewrites at ratio", [model.DynamicConfigValue(id_val="decimals", value=2)])
        .override_by_name("AOF size", [model.DynamicConfigValue(id_val="unit", value="bytes")])
        .override_by_name("rewrite min size", [model.DynamicConfigValue(id_val="unit", value="bytes")])
        .no_value("no target is past its rewrite threshold"),
    ]


def exporter_row() -> list:
    return [
        timeseries_panel(
            15,
            "Poll failures by reason",
            "Failed polls per second across the selected jobs, by reason (timeout, refused, "
            "auth, tls, reply_too_large ...). Empty while every poll succeeds.",
            8,
            8,
        )
        .with_target(
            query(
                "sum by (reason) (rate("
                f"{sel('redis_persistence_exporter_poll_failures_total')}[$__rate_interval]))",
                "{{reason}}",
            )
        )
        .unit("cps")
        .thresholds(thresholds((None, "green")))
        .no_value("no failed polls"),
        timeseries_panel(
            16,
            "Poll duration p99",
            "99th percentile of one poll's duration (connecting included) per exporter process. "
            "Near poll_timeout means polls are about to time out.",
            8,
            8,
        )
        .with_target(
            query(
                "histogram_quantile(0.99, sum by (instance, le) (rate("
                f"{sel('redis_persistence_exporter_poll_duration_seconds_bucket')}"
                "[$__rate_interval])))",
                "{{instance}} p99",
            )
        )
        .unit("s")
        .thresholds(thresholds((None, "green"))),
        timeseries_panel(
            17,
            "Targets per exporter",
            "Targets each exporter process polls: with --shard k/n, one line per shard.",
            4,
            8,
        )
        .with_target(query(sel("redis_persistence_exporter_targets"), "{{instance}}"))
        .unit("none")
        .decimals(0)
        .thresholds(thresholds((None, "green"))),
        stat_panel(
            18,
            "Config reload",
            "Whether each exporter's last config (re)load succeeded. failed: the previous config "
            "is still running; the exporter log says why.",
            4,
            8,
            common.BigValueColorMode.BACKGROUND,
        )
        .with_target(
            query(sel("redis_persistence_exporter_config_last_reload_successful"), "{{instance}}")
        )
        .mappings([value_map(("1", "ok", "green"), ("0", "failed", "red"))])
        .thresholds(thresholds((None, GREY)))
        .unit("none"),
    ]


def dashboard() -> dashboard_builder.Dashboard:
    board = (
        base_dashboard(
            "Redis persistence: fleet",
            FLEET_UID,
            "Every target of redis-persistence-exporter at once: card states and their trend, "
            "the worst targets first, AOF growth, and the exporter's own health.",
        )
        .with_variable(job_variable())
        .link(link_to("Per target", PER_TARGET_UID, "The card and its siblings for one target"))
    )
    table_panel = worst_first_table()
    sections = [
        (1, "Targets by card", counts_row()),
        (8, "Worst first", [table_panel, err_timeline()]),
        (11, "AOF growth", aof_row()),
        (14, "Exporter health", exporter_row()),
    ]
    for row_id, title, panels in sections:
        board = board.with_row(row(row_id, title))
        for panel in panels:
            board = board.with_panel(panel)
    return board
