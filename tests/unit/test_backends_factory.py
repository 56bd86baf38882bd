"""make_judging_backends (src/selftaught/backends/factory.py): the likelihood pass gets its own model only
when its dtype differs."""




def test_judging_backends_load_the_likelihood_model_in_its_own_dtype(tiny_model):
    import torch

    from selftaught.backends import make_judging_backends
    from selftaught.core.config import Generation
    g = Generation(backend="transformers", device="cpu", dtype="bfloat16", batch_size=4,
                   max_prompt_tokens=256, threads=0)
    gen, lik = make_judging_backends(tiny_model, g, ["free", "likelihood"], "float32")
    assert gen.model.dtype == torch.bfloat16 and lik.model.dtype == torch.float32
    gen, lik = make_judging_backends(tiny_model, g, ["constrained", "likelihood"], "bfloat16")
    assert lik is gen                                       # one model when the dtypes agree
    gen, lik = make_judging_backends(tiny_model, g, ["likelihood"], "float32")
    assert gen is None and lik.model.dtype == torch.float32
    gen, lik = make_judging_backends(tiny_model, g, ["free"], "float32")
    assert lik is None and gen.model.dtype == torch.bfloat16
