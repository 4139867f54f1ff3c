"""The graph forms the exporter traces (vim_deploy/export/graph_forward.py) compute the reference model's
function, run eagerly on the CPU: the conv op reading xz in place, the add-norm op, fused directions,
tokens padded to a multiple of 8 (the padding read as zeros by the conv, never read by a valid token)."""

import pytest
import torch

from vim_deploy.export.forms import PRESETS, GraphForm
from vim_deploy.export.graph_forward import traced_in_form
from vim_deploy.models import create_model

FORMS = [GraphForm(conv_impl="op"), GraphForm(conv_impl="op", token_padding=8), PRESETS["fused"],
         PRESETS["ort-optimized"], GraphForm(norm_impl="op")]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.name)
def test_graph_forms_compute_the_same_model(form):
    torch.manual_seed(1)
    m = create_model("test_vim", bidirectional="reverse").eval()
    x = torch.randn(3, 3, 64, 64)  # 17 tokens: padded to 24
    with torch.no_grad():
        ref = m(x)
        with traced_in_form(m, form):
            got = m(x)
        after = m(x)
    assert torch.allclose(ref, got, rtol=1e-5, atol=1e-6), (ref - got).abs().max()
    assert torch.equal(ref, after)  # the model's own forward is back


def test_padding_tokens_do_not_leak_into_valid_ones():
    """Perturbing what the padding tokens hold (after the position embedding) changes nothing valid."""
    m = create_model("test_vim", bidirectional="reverse").eval()
    x = torch.randn(2, 3, 64, 64)
    seen = []

    def poison(block, args, kwargs):
        h = args[0].clone()
        h[:, kwargs["valid_len"]:] = 1e3 * torch.randn_like(h[:, kwargs["valid_len"]:])
        seen.append(h.shape[1])
        return (h,) + args[1:], kwargs

    with torch.no_grad(), traced_in_form(m, GraphForm(conv_impl="op", token_padding=8)):
        ref = m(x)
        hook = m.layers[0].register_forward_pre_hook(poison, with_kwargs=True)
        got = m(x)
        hook.remove()
    assert seen == [24]
    assert torch.allclose(ref, got, rtol=1e-5, atol=1e-6), (ref - got).abs().max()


def test_a_form_and_a_model_that_disagree_on_the_backward_branch_are_refused():
    m = create_model("test_vim")  # flip form (upstream's literal one)
    with pytest.raises(ValueError, match="bidirectional='flip'"):
        with traced_in_form(m, GraphForm()):
            pass
    assert "forward" not in vars(m)


def test_forms_round_trip_through_metadata_and_name_their_runtimes():
    for name, form in PRESETS.items():
        assert GraphForm.from_metadata(form.metadata()) == form and form.name == name
    assert "tensorrt" in PRESETS["plain"].runtimes() and "tensorrt" in PRESETS["fused"].runtimes()
    assert PRESETS["ort-optimized"].runtimes() == ("onnxruntime+ops", "reference")
    assert PRESETS["portable"].runtimes() == ("onnxruntime", "reference")
    assert GraphForm.from_metadata({}) == GraphForm()  # graphs from before the form was recorded
    assert GraphForm(conv_impl="op").name == "conv_impl=op"
