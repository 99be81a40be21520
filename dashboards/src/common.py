"""What both dashboards share: the datasource, the template variables, panel defaults.

Every panel reads the `datasource` variable and every query filters on `$job`, so one
Grafana serves any Prometheus and any scrape job name.
"""

import json
import typing

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat, QueryEditorMode

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

GREY = "#8e8e8e"

# The per-target dashboard's uid: the fleet table links to it.
PER_TARGET_UID = "redis-persistence"
FLEET_UID = "redis-persistence-fleet"
TAGS = ["redis", "persistence", "redis-persistence-exporter"]


def base_dashboard(title: str, uid: str, description: str) -> dashboard_builder.Dashboard:
    """A dashboard with the settings both share: 6 h, 30 s refresh, shared crosshair."""
    return (
        dashboard_builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .timezone("")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("30s")
        .version(1)
        .annotation(
            dashboard_builder.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .built_in(1)
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
        )
        .with_variable(
            dashboard_builder.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )


def label_values_variable(name: str, label: str, query: str) -> dashboard_builder.QueryVariable:
    """A multi-value variable from `label_values(...)`, `All` by default (regex `.*`)."""
    return (
        dashboard_builder.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(
            {
                "query": query,
                "refId": "PrometheusVariableQueryEditor-VariableQuery",
                "qryType": 1,
            }
        )
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def job_variable() -> dashboard_builder.QueryVariable:
    return label_values_variable("job", "Job", "label_values(redis_up, job)")


def query(expr: str, legend: str = "{{target}}", ref: str = "A") -> prometheus.Dataquery:
    """A range query, as the panel editor's code mode writes it."""
    return (
        prometheus.Dataquery()
        .datasource(DATASOURCE)
        .editor_mode(QueryEditorMode.CODE)
        .expr(expr)
        .legend_format(legend)
        .range()
        .ref_id(ref)
    )


def table_query(expr: str, ref: str) -> prometheus.Dataquery:
    """An instant query in table format: one row per series, labels as columns."""
    return (
        prometheus.Dataquery()
        .datasource(DATASOURCE)
        .editor_mode(QueryEditorMode.CODE)
        .expr(expr)
        .format(PromQueryFormat.TABLE)
        .instant()
        .ref_id(ref)
    )


def value_map(*entries: tuple[str, str, str]) -> model.ValueMap:
    """`(value, text, colour)` entries, in display order."""
    return model.ValueMap(
        options={
            value: model.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, text, color) in enumerate(entries)
        }
    )


def thresholds(*steps: tuple[typing.Optional[float], str]) -> dashboard_builder.ThresholdsConfig:
    """Absolute steps `(from, colour)`; the first starts at `None` (minus infinity)."""
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def color_by(mode: model.FieldColorModeId) -> dashboard_builder.FieldColor:
    return dashboard_builder.FieldColor().mode(mode)


def stat_panel(
    panel_id: int,
    title: str,
    description: str,
    width: int,
    height: int,
    color_mode: common.BigValueColorMode = common.BigValueColorMode.VALUE,
    graph_mode: common.BigValueGraphMode = common.BigValueGraphMode.NONE,
) -> stat.Panel:
    """A stat showing the last value per series, named."""
    return (
        stat.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .color_scheme(color_by(model.FieldColorModeId.THRESHOLDS))
        .reduce_options(
            common_builder.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)
        )
        .color_mode(color_mode)
        .graph_mode(graph_mode)
        .justify_mode(common.BigValueJustifyMode.CENTER)
        .orientation(common.VizOrientation.AUTO)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .wide_layout(True)
        .show_percent_change(False)
    )


def timeseries_panel(
    panel_id: int,
    title: str,
    description: str,
    width: int,
    height: int,
    thresholds_style: common.GraphThresholdsStyleMode = common.GraphThresholdsStyleMode.OFF,
) -> timeseries.Panel:
    """Stepped lines (the series are sampled states, not continuous signals), shared tooltip."""
    return (
        timeseries.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .color_scheme(color_by(model.FieldColorModeId.PALETTE_CLASSIC))
        .draw_style(common.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .axis_border_show(False)
        .thresholds_style(common_builder.GraphThresholdsStyleConfig().mode(thresholds_style))
        .line_interpolation(common.LineInterpolation.STEP_AFTER)
        .mappings([])
        .min(0)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs([])
        )
        .tooltip(
            common_builder.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.NONE)
        )
    )


def row(panel_id: int, title: str) -> dashboard_builder.Row:
    return dashboard_builder.Row(title).id(panel_id)


def link_to(title: str, uid: str, tooltip: str) -> dashboard_builder.DashboardLink:
    """A dashboard link that carries the time range and the variables along."""
    return (
        dashboard_builder.DashboardLink(title)
        .type(model.DashboardLinkType.LINK)
        .url(f"/d/{uid}")
        .tooltip(tooltip)
        .icon("dashboard")
        .include_vars(True)
        .keep_time(True)
    )


def encode(dashboard: dashboard_builder.Dashboard) -> str:
    """The dashboard as the JSON file Grafana provisions: stable key order, 2-space indent."""
    data = json.loads(json.dumps(dashboard.build(), cls=JSONEncoder))
    # The SDK's variable model has no `definition`. Grafana shows it in the variable list, and
    # tests/dashboard_queries.rs resolves each `label_values(...)` found there against a real
    # Prometheus, so it is copied from the query.
    for variable in data.get("templating", {}).get("list", []):
        if variable.get("type") == "query" and isinstance(variable.get("query"), dict):
            variable["definition"] = variable["query"]["query"]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
