"""The dashboards' datasources and the queries panels send to them: PromQL for Prometheus, raw SQL
for the case service's PostgreSQL."""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# The uids the provisioned datasources have (deploy/grafana/provisioning/datasources/yujing.yaml).
PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid="yujing-prometheus")
POSTGRES = model.DataSourceRef(type_val="grafana-postgresql-datasource", uid="yujing-postgres")
DATASOURCE_KINDS = {"yujing-prometheus": "prometheus", "yujing-postgres": "postgres"}


# --- PostgreSQL targets -------------------------------------------------------------------------
# The SDK generates typed query builders for the datasources it has schemas for (Prometheus,
# Loki, Athena, BigQuery, ...) but none for Grafana's core PostgreSQL datasource. This extends the
# SDK's common DataQuery (refId, hide, queryType, datasource) the way its generated dataqueries
# do, with the fields Grafana's SQL datasources store (rawSql, format, rawQuery, editorMode).

SqlFormat = Literal["time_series", "table"]


class SqlDataquery(common.DataQuery, cogvariants.Dataquery):
    """A Grafana PostgreSQL query in code mode (a raw SQL statement)."""

    def __init__(self, raw_sql: str = "", format_val: SqlFormat = "time_series", ref_id: str = "") -> None:
        super().__init__(ref_id=ref_id, datasource=POSTGRES)
        self.raw_sql = raw_sql
        self.format_val = format_val

    def to_json(self) -> dict[str, object]:
        return {
            **super().to_json(), "rawSql": self.raw_sql, "format": self.format_val,
            "rawQuery": True, "editorMode": "code",
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(data.get("rawSql", ""), data.get("format", "time_series"), data.get("refId", ""))


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder for :class:`SqlDataquery`, in the SDK's builder style."""

    def __init__(self, raw_sql: str) -> None:
        self._internal = SqlDataquery(dedent_sql(raw_sql))

    def build(self) -> SqlDataquery:
        return self._internal

    def format(self, format_val: SqlFormat) -> Self:
        self._internal.format_val = format_val
        return self

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self


def dedent_sql(sql: str) -> str:
    """A statement written indented in the code, stored flush left (trailing spaces dropped)."""
    lines = [line.rstrip() for line in sql.strip("\n").splitlines()]
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines).strip()


def sql(raw_sql: str, ref_id: str = "A", fmt: SqlFormat = "time_series") -> Sql:
    return Sql(raw_sql).ref_id(ref_id).format(fmt)


# --- Prometheus targets -------------------------------------------------------------------------

def prom(expr: str, legend: str = "", ref_id: str = "A", *, instant: bool = False,
         fmt: PromQueryFormat | None = None) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(PROMETHEUS)
    if legend:
        query = query.legend_format(legend)
    query = query.instant() if instant else query.range()
    if fmt is not None:
        query = query.format(fmt)
    return query


def quantile(q: float, buckets: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    """A histogram's ``q`` quantile over all its series, per rate interval."""
    return prom(f"histogram_quantile({q}, sum by (le) (rate({buckets}[$__rate_interval])))", legend, ref_id)
