"""The example accelerate configs (docs/scaling.md) load with accelerate's own config loader; the FSDP
config takes its wrap class from the model."""

import os
from unittest import mock

import pytest
from support.repo import ROOT


@pytest.mark.parametrize("name, kind, machines", [("ddp.yaml", "MULTI_GPU", 1), ("fsdp.yaml", "FSDP", 1),
                                                  ("ddp_cpu.yaml", "MULTI_GPU", 1),
                                                  ("ddp_cpu_2machines.yaml", "MULTI_GPU", 2)])
def test_accelerate_config_loads(name, kind, machines):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    cfg = load_config_from_file(str(ROOT / "configs" / "accelerate" / name))
    assert isinstance(cfg, ClusterConfig)
    assert str(cfg.distributed_type).endswith(kind) and cfg.num_processes > 1
    assert cfg.num_machines == machines and cfg.num_processes % machines == 0
    assert str(cfg.mixed_precision).endswith("no")     # train.precision fp32 (bf16 is set by training.py)
    assert cfg.use_cpu == ("_cpu" in name)
    if machines > 1:        # a fixed rendezvous every machine can reach (machine_rank: 0 is machine 0's)
        assert cfg.rdzv_backend == "static" and cfg.main_process_ip and cfg.main_process_port
        assert cfg.machine_rank == 0
    if kind == "FSDP":
        assert cfg.fsdp_config["fsdp_version"] == 2
        assert cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def test_fsdp_wraps_the_blocks_the_model_names(tiny_model):
    """No decoder class is written in the FSDP config: accelerate wraps each module of the model's
    `_no_split_modules` (here LlamaDecoderLayer; Qwen2DecoderLayer for a Qwen judge, and so on)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from accelerate.utils.launch import prepare_multi_gpu_env
    from transformers import AutoModelForCausalLM

    args = launch_command_parser().parse_args(["--config_file", str(ROOT / "configs/accelerate/fsdp.yaml"),
                                               "x.py"])
    env = prepare_multi_gpu_env(_validate_launch_command(args)[0])      # what `accelerate launch` exports
    assert (env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
            and "FSDP_TRANSFORMER_CLS_TO_WRAP" not in env)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with mock.patch.dict(os.environ, {k: v for k, v in env.items() if k.startswith("FSDP_")}):
        policy = fsdp2_prepare_auto_wrap_policy(FullyShardedDataParallelPlugin(), model)
    wrapped = [name for name, module in model.named_modules() if policy(module)]
    assert wrapped == [f"model.layers.{i}" for i in range(model.config.num_hidden_layers)]
    assert {type(model.get_submodule(n)).__name__ for n in wrapped} == set(model._no_split_modules)
