"""The generated boards: committed JSON matches the code, loads back through the SDK's models,
and names only the provisioned datasource and folder."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.dashboard import Panel

from dashboards.boards import BOARDS, FOLDER_UID
from dashboards.build import DASHBOARDS_DIR, load_dashboard, panel_queries, substitute, write_dashboards
from dashboards.panels import DATASOURCE_UID
from tmstream.ground.settings import PROJECT_ROOT

PROVISIONING = PROJECT_ROOT / "deploy" / "grafana" / "provisioning"


def test_committed_json_is_what_the_code_generates(tmp_path: Path) -> None:
    for path in write_dashboards(tmp_path):
        committed = DASHBOARDS_DIR / path.name
        assert committed.read_text() == path.read_text(), f"run `tmstream dashboards build` ({path.name})"


def test_every_board_loads_back_through_the_sdk_models() -> None:
    uids = set()
    for name in BOARDS:
        path = DASHBOARDS_DIR / f"{name}.json"
        board = load_dashboard(path)
        raw = json.loads(path.read_text())
        assert board.uid == raw["uid"] and board.title == raw["title"]
        uids.add(board.uid)
        panels = [panel for panel in board.panels or [] if isinstance(panel, Panel)]
        assert panels, name
        for panel in panels:
            for target in panel.targets or []:
                assert isinstance(target, prometheus.Dataquery) and target.expr, (name, panel.title)
    assert len(uids) == len(BOARDS)


def test_queries_name_the_provisioned_datasource_and_folder() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "tmstream.yml").read_text())["datasources"]
    assert [source["uid"] for source in datasources] == [DATASOURCE_UID]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "tmstream.yml").read_text())["providers"]
    assert providers[0]["folderUid"] == FOLDER_UID
    for name in BOARDS:
        raw = json.loads((DASHBOARDS_DIR / f"{name}.json").read_text())
        for panel in raw["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == DATASOURCE_UID, (name, panel["title"])


def test_channel_board_has_its_variables_and_an_anomaly_annotation() -> None:
    raw = json.loads((DASHBOARDS_DIR / "channel.json").read_text())
    assert [variable["name"] for variable in raw["templating"]["list"]] == ["spacecraft", "channel"]
    annotation = [q for q in panel_queries(raw) if q.panel.startswith("annotation")]
    assert len(annotation) == 1
    assert annotation[0].expr.startswith(
        'max(tmstream_channel_in_alarm{spacecraft="$spacecraft",channel="$channel"})'
    )
    assert "changes(tmstream_anomalies_total{" in annotation[0].expr, "short anomalies are marked too"


def test_substitute_replaces_whole_variable_names_only() -> None:
    expr = 'x{sc="$spacecraft",c="${channel}"}[$__rate_interval] $channels'
    values = {"spacecraft": "MSL", "channel": "D-14", "__rate_interval": "15s"}
    assert substitute(expr, values) == 'x{sc="MSL",c="D-14"}[15s] $channels'
