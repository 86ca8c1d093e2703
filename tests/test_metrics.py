"""The metric registry is the one list: config, schema, bundle entries and the browser all match it."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from convnet_search import config

from convnet_search.search import metrics
from convnet_search.stages.bundle import metric_entries
from convnet_search.search.metrics import METRIC_IDS, METRICS, metric_entry, resolve_metric

ROOT = Path(__file__).resolve().parent.parent


def test_ids_are_unique_and_every_alias_resolves_to_its_metric():
    assert len(set(METRIC_IDS)) == len(METRIC_IDS) >= 4
    for m in METRICS.values():
        for name in (m.id, *m.aliases, m.id.upper(), m.id.replace("_", "-")):
            assert resolve_metric(name) == m.id
        assert m.kernel in ("gemm", "minkowski")
        assert m.label and m.description


def test_config_uses_the_registry():
    assert config.ALL_METRICS == METRIC_IDS
    assert all(m in config.KEYS["metrics"].help for m in METRIC_IDS)
    cfg = config.load_config(None, {"metrics": ["cos", "L2", "sq-euclidean", "lp"]})
    assert cfg.metrics == METRIC_IDS
    with pytest.raises(config.ConfigError, match="unknown metric 'hamming'"):
        config.load_config(None, {"metrics": ["hamming"]})


def test_schema_enum_equals_registry():
    schema = json.loads((ROOT / "docs/manifest.schema.json").read_text(encoding="utf-8"))
    enum = schema["properties"]["metrics"]["items"]["properties"]["id"]["enum"]
    assert tuple(enum) == METRIC_IDS


def test_typescript_registry_is_the_generated_one():
    """frontend/src/live/metricRegistry.ts is what `python -m convnet_search.search.metrics` writes, and
    its METRIC_IDS literal (parsed from the file, as the browser reads it) equals the registry."""
    text = (ROOT / metrics.TS_PATH).read_text(encoding="utf-8")
    assert text == metrics.typescript_source(), "run: python -m convnet_search.search.metrics"
    literal = re.search(r"export const METRIC_IDS = \[([^\]]*)\] as const;", text).group(1)
    assert tuple(re.findall(r"'([^']+)'", literal)) == METRIC_IDS
    p = re.search(r"export const DEFAULT_MINKOWSKI_P = ([0-9.]+);", text).group(1)
    assert float(p) == metrics.DEFAULT_MINKOWSKI_P
    # the browser's live-search list is that import, not a second typed copy
    live = (ROOT / "frontend/src/live/metrics.ts").read_text(encoding="utf-8")
    assert "from './metricRegistry'" in live
    assert "LIVE_METRICS: readonly LiveMetric[] = METRIC_IDS;" in live
    assert not re.search(r"\[\s*'cosine',", live)  # no second typed list


def test_main_writes_the_typescript_file(tmp_path):
    assert metrics.main([str(tmp_path)]) == 0
    assert (tmp_path / metrics.TS_PATH).read_text(encoding="utf-8") == metrics.typescript_source()


def test_bundle_entries_come_from_the_registry():
    entries = metric_entries(list(METRIC_IDS), 3.0)
    assert [e["id"] for e in entries] == list(METRIC_IDS)
    for e in entries:
        m = METRICS[e["id"]]
        assert e["description"] == m.description
        assert (e["p"] is None) == (m.p is None)
    assert metric_entry("minkowski", 4.0) == {
        "id": "minkowski", "label": "Minkowski (p=4)", "p": 4.0, "description": METRICS["minkowski"].description}
    assert metric_entry("cosine", 4.0)["label"] == "Cosine"
