"""Bad plans and bad stack config stop the program before any resource, with a message naming the fix;
and the entry point runs the way the Pulumi CLI runs it. That the user then sees the message and no
Python traceback is shown through the real `pulumi` CLI in tests/real/test_real_errors.py."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.addresses import stack_config
from infra.errors import InfraError
from infra.mockrun import run_shipped_stack, run_stack
from infra.settings import parse_settings
from tests.support import ROOT

pytestmark = pytest.mark.filterwarnings("ignore:openstack.index:DeprecationWarning")


def with_extranet(stack: str, change: Any) -> dict[str, Any]:
    extranet = copy.deepcopy(stack_config(stack)["extranet"])
    change(extranet)
    return {"extranet": extranet}


@pytest.mark.parametrize(("stack", "overrides", "message"), [
    ("provincial-cloud", {"scope": "municipal-dc-shanghai"}, r"digital-fujian:scope: 'municipal-dc-shanghai' is not"),
    ("provincial-cloud", {"clientCidrs": ["0.0.0.0/0"]}, r"digital-fujian:clientCidrs: '0\.0\.0\.0/0' admits the "
                                                          r"whole internet"),
    ("provincial-cloud", {"operationsCidrs": []}, r"digital-fujian:operationsCidrs: must list at least one CIDR"),
    ("provincial-cloud", {"addressSpace": "10.127.0.0/16"}, r"horizontal-province 10\.127\.0\.0/24 overlaps "
                                                            r"addressSpace"),
    ("provincial-cloud", {"externalNetwork": ""}, r"digital-fujian:externalNetwork: the boundary platform needs"),
    ("provincial-cloud", {"flavors": [{"name": "fj.small", "vcpus": 2, "ramMb": 4096, "maxDataGb": 100}]},
     r"the largest flavor must have no maxDataGb"),
    ("provincial-cloud", with_extranet("provincial-cloud", lambda e: e["segments"][1].update(vlan=2100)),
     r"VLAN 2100 is used by horizontal-province and vertical-fuzhou"),
    ("provincial-cloud", with_extranet("provincial-cloud", lambda e: e["boundary"]["flows"][0].update(
        **{"from": "0.0.0.0/0"})), r"boundary\.flows\[0\]\.from: '0\.0\.0\.0/0' admits the whole internet"),
    ("provincial-cloud", with_extranet("provincial-cloud", lambda e: e["boundary"].update(extranetAddress="x")),
     r"extranet\.boundary\.extranetAddress: 'x' is not an IPv4 address"),
    ("provincial-cloud", with_extranet("provincial-cloud",
                                       lambda e: e["boundary"].update(extranetAddress="10.127.0.1")),
     r"extranetAddress: 10\.127\.0\.1 must be a free host address of horizontal-province"),
    ("provincial-cloud", {"flavors": [{"name": "a", "vcpus": 2, "ramMb": 4096, "maxDataGb": "big"}, {"name": "b",
                                       "vcpus": 4, "ramMb": 8192}]}, r"flavors\[0\]\.maxDataGb: 'big' is not a whole"),
    ("municipal-dc-fuzhou", with_extranet("municipal-dc-fuzhou", lambda e: e["segments"][0].update(city="xiamen")),
     r"a municipal-dc-fuzhou stack builds fuzhou's segments only, not horizontal-fuzhou"),
])
def test_bad_config_is_refused(stack: str, overrides: dict[str, Any], message: str) -> None:
    config = stack_config(stack)
    config.update(overrides)
    with pytest.raises(InfraError, match=message):
        parse_settings(config)


def test_a_department_without_its_extranet_segment_fails_clearly() -> None:
    overrides = with_extranet("municipal-dc-fuzhou", lambda e: e.update(
        segments=[s for s in e["segments"] if s["name"] != "horizontal-fuzhou-county"]))
    with pytest.raises(InfraError, match=r"fz-minhou-hrss: no horizontal extranet segment with level=county "
                                         r"city=fuzhou"):
        run_stack("municipal-dc-fuzhou", overrides)


def test_an_extranet_segment_over_a_private_network_is_refused() -> None:
    overrides = with_extranet("municipal-dc-xiamen", lambda e: e["segments"].append(
        {"name": "vertical-xiamen-legacy", "kind": "vertical", "level": "city", "city": "xiamen", "vlan": 1999,
         "cidr": "172.21.1.0/28", "bandwidthMbps": 100}))
    with pytest.raises(InfraError, match=r"vertical-xiamen-legacy 172\.21\.1\.0/28 overlaps private network "
                                         r"xm-transport/xmtr-net"):
        run_stack("municipal-dc-xiamen", overrides)


def test_invalid_plans_build_nothing(plans_copy: Path) -> None:
    path = plans_copy / "fj-aic.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("host: aic-db01", "host: aic-db09", 1), encoding="utf-8")
    with pytest.raises(InfraError, match=r"fj-aic\.yaml:\d+: error\[unknown-reference\]: system 'registry': host "
                                         r"'aic-db09'") as caught:
        run_stack("provincial-cloud", {"plans": str(plans_copy)})
    assert "nothing is built until `fjmig validate` passes" in str(caught.value)


def test_an_unknown_milestone_is_refused() -> None:
    with pytest.raises(InfraError, match=r"digital-fujian:milestones: provincial-clod not in infra\.yaml"):
        run_stack("provincial-cloud", {"milestones": ["provincial-clod"]})


def test_a_missing_plans_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match=r"no such plans directory \(config digital-fujian:plans\)"):
        run_stack("municipal-dc-pingtan", {"plans": str(tmp_path / "nowhere")})


ENTRY = """
import asyncio, runpy, sys
import pulumi, pulumi.runtime
root = sys.argv[1]
sys.path.insert(0, root)  # only to import the mocks: the program must find its packages itself
from infra.mockrun import MockRun, RecordingMocks, config_values, stack_settings_config
sys.path.remove(root)
for name in [m for m in sys.modules if m.split(".")[0] in ("infra", "orchestrator")]:
    del sys.modules[name]
run = MockRun("provincial-cloud")
asyncio.set_event_loop(asyncio.new_event_loop())
pulumi.runtime.set_mocks(RecordingMocks(run), project="digital-fujian", stack="provincial-cloud", preview=False)
pulumi.runtime.set_all_config(config_values(stack_settings_config("provincial-cloud")))

@pulumi.runtime.test
def program():
    runpy.run_path(f"{root}/infra", run_name="__main__")  # what `main: infra/` does

program()
print(len(run.resources))
"""


def test_entry_point_runs_as_pulumi_runs_it_from_any_directory(tmp_path: Path) -> None:
    script = tmp_path / "entry.py"
    script.write_text(ENTRY, encoding="utf-8")
    result = subprocess.run([sys.executable, "-I", str(script), str(ROOT)], cwd=tmp_path, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == len(run_shipped_stack("provincial-cloud").resources)
