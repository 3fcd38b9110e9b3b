"""Topology inputs: explicit-graph mistakes at their field paths, shipped files' sources, the
format documentation (builders docstring, docs/topologies.md) and the vertex names that
cluster.degraded_links refer to."""

from __future__ import annotations

import pytest

from simulator.core.errors import UserError
from simulator.system.topology.loader import topology_from_dict


def _explicit(vertices, edges):
    return {
        "name": "x",
        "gpu": "a100-80gb",
        "builder": "explicit",
        "vertices": vertices,
        "edges": edges,
    }


def _run_cli(argv):
    from simulator.cli.main import main

    return main(argv)


def test_explicit_self_loop_is_reported_as_a_self_loop_at_its_edge():
    data = _explicit(
        [{"name": "a", "kind": "gpu"}, {"name": "b", "kind": "gpu"}],
        [
            {"src": "a", "dst": "b", "bw": "1 GB/s"},
            {"src": "b", "dst": "b", "bw": "1 GB/s"},
        ],
    )
    with pytest.raises(UserError) as err:
        topology_from_dict(data)
    text = str(err.value)
    assert "edges[1]: self-loop: src and dst are both 'b'" in text
    assert "duplicate" not in text
    # One direction only (duplex: false) is a self-loop too.
    data["edges"][1]["duplex"] = False
    with pytest.raises(UserError, match=r"edges\[1\]: self-loop"):
        topology_from_dict(data)


def test_explicit_duplicate_edge_is_reported_at_its_edge():
    data = _explicit(
        [{"name": "a", "kind": "gpu"}, {"name": "b", "kind": "gpu"}],
        [
            {"src": "a", "dst": "b", "bw": "1 GB/s"},
            {"src": "b", "dst": "a", "bw": "2 GB/s", "duplex": False},
        ],
    )
    with pytest.raises(UserError, match=r"edges\[1\]: duplicate edge b->a"):
        topology_from_dict(data)


def test_explicit_vertices_and_edges_must_be_lists():
    with pytest.raises(UserError) as err:
        topology_from_dict(_explicit({"name": "a"}, "a->b"))
    assert "vertices: expected a list" in str(err.value) and "edges: expected a list" in str(
        err.value
    )


def test_no_shipped_file_cites_files_outside_the_package():
    # Shipped topologies and scenarios once cited shared/validation/published.yaml, which is
    # not part of the package: sources must be the primary ones (data sheets, papers).
    from importlib.resources import files

    data = files("simulator.data")
    shipped = [p for p in _walk(data) if p.name.endswith((".yaml", ".yml"))]
    assert len(shipped) > 8
    for path in shipped:
        assert "shared/" not in path.read_text(encoding="utf-8"), path.name


def _walk(folder):
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _walk(entry)
        else:
            yield entry


def test_every_example_in_the_topology_docs_builds():
    import re

    import yaml

    from tests.helpers import PROJECT_ROOT

    text = (PROJECT_ROOT / "docs" / "topologies.md").read_text(encoding="utf-8")
    examples = [
        yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    ]
    builders = {e["builder"] for e in examples}
    from simulator.system.topology.builders import TOPOLOGY_BUILDERS

    assert builders == set(TOPOLOGY_BUILDERS)  # every builder has a worked example
    for example in examples:
        assert topology_from_dict(example).num_gpus >= 4


def test_builders_docstring_documents_the_explicit_format():
    from simulator.system.topology import builders

    doc = builders.__doc__
    for key in (
        "vertices",
        "edges",
        "name",
        "kind",
        "host",
        "src",
        "dst",
        "bw",
        "latency",
        "duplex",
    ):
        assert key in doc


def test_topology_show_vertices_lists_names_degraded_links_accept(capsys):
    from tests.helpers import make_scenario

    assert _run_cli(["topology", "show", "dgx-a100", "--num-hosts", "2", "--vertices"]) == 0
    out = capsys.readouterr().out
    vertices = out.split("vertex names:\n")[1].split("links (source -> target):\n")[0].split("\n")
    names = {line.split()[0] for line in vertices if line.strip()}
    assert {"h0.gpu0", "h1.nic7", "h1.nvswitch", "leaf0"} <= names and len(names) == 2 * 17 + 8
    links = out.split("links (source -> target):\n")[1].split("\n")
    link = next(line.strip() for line in links if line.strip().startswith("h1.nic3 -> "))
    source, target = link.split(" -> ")
    assert source in names and target in names
    cluster = {
        "topology": "dgx-a100",
        "num_hosts": 2,
        "degraded_links": [{"source": source, "target": target, "bandwidth_factor": 0.5}],
    }
    scenario = make_scenario(cluster=cluster)
    assert scenario.cluster.degraded_links[0].source == "h1.nic3"
    with pytest.raises(UserError, match="topology show dgx-a100 --vertices"):
        make_scenario(
            cluster={
                **cluster,
                "degraded_links": [
                    {"source": "h1.nic9", "target": target, "bandwidth_factor": 0.5}
                ],
            }
        )
