"""The example accelerate configs (docs/scaling.md) load with accelerate's own config loader."""

import pytest

from conftest import ROOT


@pytest.mark.parametrize("name, kind", [("accelerate_ddp.yaml", "MULTI_GPU"), ("accelerate_fsdp.yaml", "FSDP")])
def test_accelerate_config_loads(name, kind):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    cfg = load_config_from_file(str(ROOT / "configs" / name))
    assert isinstance(cfg, ClusterConfig)
    assert str(cfg.distributed_type).endswith(kind) and cfg.num_processes > 1 and cfg.num_machines == 1
    assert str(cfg.mixed_precision).endswith("no")          # training.py trains in float32
    if kind == "FSDP":
        assert cfg.fsdp_config["fsdp_version"] == 2
        assert cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
