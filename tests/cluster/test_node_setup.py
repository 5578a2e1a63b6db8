"""Per-node set-up: DNSMOS checked once per node; kernel builds only where CUDA is."""

from __future__ import annotations

import pytest
import torch

from serec.cluster.node_setup import main, setup_node


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU node behaviour")
def test_a_cpu_node_checks_dnsmos_and_has_no_kernels_to_build(capsys):
    lines = setup_node(sgmse_src="/not/needed/without/cuda", storm_src="/nor/this")
    assert lines[0].startswith("dnsmos: DNSMOS runs on CPUExecutionProvider")
    assert [line.split(":")[0] for line in lines] == ["dnsmos", "sgmse", "storm"]
    assert all("no CUDA on this node" in line for line in lines[1:])
    assert main(["--no-dnsmos"]) == 0
    assert "dnsmos" in capsys.readouterr().out
