"""OpenLineage facets of the operator: the API's search as input, the written object as output."""

from __future__ import annotations

from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_voicetrack.personal_data import PersonalDataFilter
from airflow_voicetrack.writers import WriteResult, column_types

#: Name of the API dataset in OpenLineage (its namespace is the API base URL).
LINEAGE_INPUT_NAME = "voice/tracking"


def operator_lineage(
    base_url: str,
    output_format: str,
    exclude_fields: Any,
    path: ObjectStoragePath | None,
    written: WriteResult | None,
) -> Any:
    """
    Build the operator's ``OperatorLineage`` of START (``written`` None) or COMPLETE.

    Input: the API's search endpoint (namespace ``base_url``); output: the object at ``path``, with
    its schema (CSV and Parquet: the columns ``exclude_fields`` leaves) and, once ``written``, its
    statistics (records and bytes).

    Needs the ``apache-airflow-providers-openlineage`` provider, imported only here.
    """
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    outputs = []
    if path is not None:
        facets: dict[str, Any] = {}
        # The columns left by exclude_fields; no hash key is needed to know them.
        columns = column_types(output_format, PersonalDataFilter(exclude_fields).columns())
        if columns is not None:
            fields = [SchemaDatasetFacetFields(name=name, type=kind) for name, kind in columns]
            facets["schema"] = SchemaDatasetFacet(fields=fields)
        statistics: dict[str, Any] = {}
        if written is not None:
            statistics["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
                rowCount=written.records, size=written.bytes
            )
        outputs.append(
            OutputDataset(
                namespace=path.namespace,
                name=_lineage_name(path),
                facets=facets,
                outputFacets=statistics,
            )
        )
    return OperatorLineage(
        inputs=[Dataset(namespace=base_url, name=LINEAGE_INPUT_NAME)],
        outputs=outputs,
    )


def _lineage_name(path: ObjectStoragePath) -> str:
    """The OpenLineage dataset name of an object: its key in a bucket, or its absolute path."""
    return path.key if path.bucket else path.path
