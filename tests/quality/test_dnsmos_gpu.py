"""DNSMOS given GPUs runs on CUDA or fails loudly; tested on a CPU-only Ray node with a fake GPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import onnxruntime as ort
import pytest

from serec.quality.dnsmos import CUDA_PROVIDER, DnsmosGpuError, cuda_providers

REPO = Path(__file__).resolve().parents[2]
NO_CUDA = CUDA_PROVIDER not in ort.get_available_providers()


@pytest.mark.skipif(not NO_CUDA, reason="this onnxruntime has the CUDA provider")
def test_cuda_providers_name_the_missing_package():
    with pytest.raises(DnsmosGpuError, match=r"serec\[gpu\].*onnxruntime-gpu"):
        cuda_providers()


@pytest.mark.skipif(not NO_CUDA, reason="this onnxruntime has the CUDA provider")
@pytest.mark.timeout(300)
def test_label_job_with_dnsmos_on_a_fake_gpu_fails_with_the_reason(tmp_path):
    """A Ray node advertising one GPU (none is there): the DNSMOS actor must refuse to idle it."""
    script = textwrap.dedent(f"""
        import sys
        import numpy as np, soundfile as sf, ray, yaml
        sys.path.insert(0, {str(REPO)!r})
        from serec.config import load_config
        from serec.data.importer import import_recordings
        from serec.label.pipeline import run_label
        from serec.runs import RunDir

        tmp = {str(tmp_path)!r}
        rng = np.random.default_rng(0)
        import os
        os.makedirs(tmp + "/clips")
        for i in range(2):
            sf.write(f"{{tmp}}/clips/c{{i}}.wav", 0.1 * rng.standard_normal(16000), 16000)
        run = RunDir.of(tmp + "/run")
        import_recordings(run, [tmp + "/clips"])
        config = {{"enhancers": {{"passthrough": {{"resources": {{"num_cpus": 0.1}}}}}},
                  "label": {{"decode": {{"num_cpus": 0.1}}}},
                  "dnsmos": {{"num_cpus": 0.1, "num_gpus": 0.5, "batch_size": 2}}}}
        open(tmp + "/c.yaml", "w").write(yaml.safe_dump(config))
        ray.init(num_cpus=1, num_gpus=1, include_dashboard=False)
        assert ray.cluster_resources().get("GPU") == 1
        try:
            run_label(run, load_config(tmp + "/c.yaml"))
        except Exception as exc:
            print("FAILED:", exc)
            sys.exit(3)
        print("labeled without error")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=280, env={"PATH": "/usr/bin:/bin", "RAY_DEDUP_LOGS": "0",
                                            "HOME": str(tmp_path)})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 3, output[-3000:]
    assert "onnxruntime-gpu" in output and "dnsmos.num_gpus" in output, output[-3000:]
