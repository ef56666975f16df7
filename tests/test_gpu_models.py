"""The GPU peak table by exact model: the names torch.cuda.get_device_name reports, never substrings."""

from __future__ import annotations

import pytest

from jalm.errors import JalmError
from jalm.train.plan import GIB, gpu, gpu_model, peak_flops

# (reported name, model, dense bf16 TFLOP/s, GiB as nvidia-smi reports it, rounded)
REPORTED = [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989, 80),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756, 80),
    ("NVIDIA H100 NVL", "H100 NVL", 835, 94),
    ("NVIDIA H200", "H200 SXM", 989, 140),
    ("NVIDIA H200 NVL", "H200 NVL", 835, 140),
    ("NVIDIA A100-SXM4-80GB", "A100 SXM 80GB", 312, 80),
    ("NVIDIA A100-SXM4-40GB", "A100 SXM 40GB", 312, 40),
    ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB", 312, 80),
    ("NVIDIA A100-PCIE-40GB", "A100 PCIe 40GB", 312, 40),
    ("NVIDIA L40S", "L40S", 362, 45),
    ("NVIDIA L40", "L40", 181, 45),
    ("NVIDIA L4", "L4", 121, 22),
    ("NVIDIA A10", "A10", 125, 22),
]


@pytest.mark.parametrize(("name", "model", "tflops", "gib"), REPORTED)
def test_each_reported_name_is_its_own_model(name, model, tflops, gib):
    assert gpu_model(name)[0] == model
    assert peak_flops(name) == tflops * 1e12
    assert round(gpu(name).memory / GIB) == gib


def test_near_names_do_not_borrow_a_peak():
    # The mistakes a substring table makes: NVL/PCIe parts getting the SXM peak, L40S matching L4.
    assert peak_flops("NVIDIA H100 NVL") < peak_flops("NVIDIA H100 80GB HBM3")
    assert peak_flops("NVIDIA H100 PCIe") < peak_flops("NVIDIA H100 NVL")
    assert peak_flops("NVIDIA L40S") != peak_flops("NVIDIA L4")
    for unknown in (
        "NVIDIA A10G",
        "NVIDIA H100",
        "NVIDIA GeForce RTX 4090",
        "Tesla V100-SXM2-16GB",
        "cpu",
        "",
    ):
        assert peak_flops(unknown) == 0.0, unknown


def test_short_names_for_planning():
    assert gpu("h100").peak_flops == 989e12 and gpu("H100 NVL").peak_flops == 835e12
    assert gpu("L40S").peak_flops == 362e12 and gpu("l4").peak_flops == 121e12
    assert gpu("A100-40GB").memory == 40 * GIB and gpu("A100").memory == 80 * GIB
    assert gpu("MI300X:192").peak_flops == 0.0
    with pytest.raises(JalmError, match="unknown GPU"):
        gpu("H10")
