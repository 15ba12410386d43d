"""The MaPO activation hook points, checked against forwards computed by hand on tiny models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

from tokenpo.trainers.activations import activation_mask, captured_activations
from tokenpo.trainers.forward import transformer_layers
from tokenpo.trainers.hooknames import HOOK_POINTS, HOOK_TYPES, MODEL_LEVEL_POINTS, resolve_points

ALL = resolve_points(HOOK_TYPES)
PER_LAYER = [name for name in ALL if name not in MODEL_LEVEL_POINTS]


@pytest.fixture(scope="module")
def tiny_neox():
    """GPT-NeoX with parallel residual and rotary on a quarter of each head (2 of 8 dims)."""
    config = GPTNeoXConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        rotary_pct=0.25,
        use_parallel_residual=True,
    )
    torch.manual_seed(1)
    return GPTNeoXForCausalLM(config).eval()


@pytest.fixture(scope="module")
def wide_head_llama():
    """Llama whose head_dim (16) is not hidden/heads (8), with 2 key-value heads for 4 query heads."""
    config = LlamaConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
    )
    torch.manual_seed(2)
    return LlamaForCausalLM(config).eval()


def model_of(request, name: str):
    value = request.getfixturevalue(name)
    return value[0] if isinstance(value, tuple) else value


def token_ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 100, (2, 6), generator=torch.Generator().manual_seed(seed))


def capture(model, points, layers=None, ids=None, **kwargs):
    """One forward under no_grad inside the capture; returns (capture, model output)."""
    ids = token_ids() if ids is None else ids
    with torch.no_grad(), captured_activations(model, points, layers) as captured:
        output = model(input_ids=ids, **kwargs)
    return captured, output


def scores_of_each_point(model, ids) -> dict[str, list[torch.Tensor]]:
    """Each point captured alone, so a point's list is its per-layer scores in layer order."""
    result = {}
    for name in ALL:
        captured, _ = capture(model, [name], ids=ids)
        if name in captured.found:
            result[name] = captured.scores[name.split(".")[0]]
    return result


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# ------------------------------------------------------------------ forwards by hand


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def rotary(x: torch.Tensor, theta: float, rotary_dim: int) -> torch.Tensor:
    """RoPE on the first ``rotary_dim`` dims of (N, heads, L, head_dim); angle of pair i at t: t·θ^(−2i/d)."""
    inverse = 1.0 / theta ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim)
    angles = torch.outer(torch.arange(x.shape[2], dtype=torch.float32), inverse)
    angles = torch.cat([angles, angles], dim=-1)
    part, rest = x[..., :rotary_dim], x[..., rotary_dim:]
    return torch.cat([part * angles.cos() + rotate_half(part) * angles.sin(), rest], dim=-1)


def heads(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """(N, L, n·d) → (N, n, L, d)."""
    return x.reshape(*x.shape[:2], -1, head_dim).transpose(1, 2)


def flat(x: torch.Tensor) -> torch.Tensor:
    """(N, n, L, d) → (N, L, n·d)."""
    return x.transpose(1, 2).flatten(2)


def causal_attention(q, k, v) -> torch.Tensor:
    """softmax(q·kᵀ/√d + causal)·v with grouped key-value heads; (N, heads, L, d) → (N, L, heads·d)."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    length = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~torch.ones(length, length, dtype=torch.bool).tril(), -math.inf)
    return flat(scores.softmax(dim=-1) @ v)


def llama_layer(model, layer, h) -> dict[str, torch.Tensor]:
    config, attention, mlp = model.config, layer.self_attn, layer.mlp
    x = layer.input_layernorm(h)
    q, k, v = attention.q_proj(x), attention.k_proj(x), attention.v_proj(x)
    theta, d = config.rope_parameters["rope_theta"], config.head_dim
    q_rot, k_rot = rotary(heads(q, d), theta, d), rotary(heads(k, d), theta, d)
    output = causal_attention(q_rot, k_rot, heads(v, d))
    delta = attention.o_proj(output)
    post = h + delta
    normed = layer.post_attention_layernorm(post)
    post_act = F.silu(mlp.gate_proj(normed)) * mlp.up_proj(normed)
    mlp_delta = mlp.down_proj(post_act)
    return {
        "mlp.post_act": post_act,
        "attention.q": q,
        "attention.k": k,
        "attention.v": v,
        "attention.q_rotary": flat(q_rot),
        "attention.k_rotary": flat(k_rot),
        "attention.output": output,
        "residual.input_norm": x,
        "residual.attention_delta": delta,
        "residual.post_attention": post,
        "residual.post_attention_norm": normed,
        "residual.mlp_delta": mlp_delta,
        "residual.block_output": post + mlp_delta,
    }


def gpt2_layer(model, layer, h) -> dict[str, torch.Tensor]:
    attention, mlp, d = layer.attn, layer.mlp, model.config.n_embd // model.config.n_head
    x = layer.ln_1(h)
    q, k, v = attention.c_attn(x).split(model.config.n_embd, dim=-1)  # thirds
    output = causal_attention(heads(q, d), heads(k, d), heads(v, d))
    delta = attention.c_proj(output)
    post = h + delta
    normed = layer.ln_2(post)
    post_act = mlp.act(mlp.c_fc(normed))
    mlp_delta = mlp.c_proj(post_act)
    return {
        "mlp.post_act": post_act,
        "attention.q": q,
        "attention.k": k,
        "attention.v": v,
        "attention.output": output,
        "residual.input_norm": x,
        "residual.attention_delta": delta,
        "residual.post_attention": post,
        "residual.post_attention_norm": normed,
        "residual.mlp_delta": mlp_delta,
        "residual.block_output": post + mlp_delta,
    }


def neox_layer(model, layer, h) -> dict[str, torch.Tensor]:
    config, attention, mlp = model.config, layer.attention, layer.mlp
    d = config.hidden_size // config.num_attention_heads
    x = layer.input_layernorm(h)
    # Per head: [q | k | v] of head_dim each.
    qkv = attention.query_key_value(x).view(*x.shape[:2], config.num_attention_heads, 3, d)
    q, k, v = (qkv[..., part, :] for part in range(3))  # (N, L, heads, d)
    theta, rotary_dim = config.rope_parameters["rope_theta"], int(d * 0.25)
    q_rot, k_rot = rotary(q.transpose(1, 2), theta, rotary_dim), rotary(k.transpose(1, 2), theta, rotary_dim)
    output = causal_attention(q_rot, k_rot, v.transpose(1, 2))
    delta = attention.dense(output)
    normed = layer.post_attention_layernorm(h)  # parallel residual: the MLP reads the block input
    post_act = mlp.act(mlp.dense_h_to_4h(normed))
    mlp_delta = mlp.dense_4h_to_h(post_act)
    return {
        "mlp.post_act": post_act,
        "attention.q": q.flatten(2),
        "attention.k": k.flatten(2),
        "attention.v": v.flatten(2),
        "attention.q_rotary": flat(q_rot),
        "attention.k_rotary": flat(k_rot),
        "attention.output": output,
        "residual.input_norm": x,
        "residual.attention_delta": delta,
        "residual.post_attention_norm": normed,
        "residual.mlp_delta": mlp_delta,
        "residual.block_output": h + delta + mlp_delta,
    }


HAND = {
    "tiny_llama": (llama_layer, lambda m: m.model.norm),
    "wide_head_llama": (llama_layer, lambda m: m.model.norm),
    "tiny_gpt2": (gpt2_layer, lambda m: m.transformer.ln_f),
    "tiny_neox": (neox_layer, lambda m: m.gpt_neox.final_layer_norm),
}
MISSING = {
    "tiny_llama": [],
    "wide_head_llama": [],
    "tiny_gpt2": ["attention.q_rotary", "attention.k_rotary"],
    "tiny_neox": ["residual.post_attention"],
}


# ------------------------------------------------------------------ capture


@pytest.mark.parametrize("name", list(HAND))
def test_every_point_equals_the_mean_of_a_forward_by_hand(name, request):
    model = model_of(request, name)
    layer_by_hand, final_norm = HAND[name]
    ids = token_ids()
    scores = scores_of_each_point(model, ids)
    assert sorted(set(ALL) - set(scores)) == sorted(MISSING[name])
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
        blocks = transformer_layers(model)
        h = hidden[0]
        for index, block in enumerate(blocks):
            expected = layer_by_hand(model, block, h)
            assert set(expected) == {n for n in scores if n not in MODEL_LEVEL_POINTS}
            for point, tensor in expected.items():
                torch.testing.assert_close(scores[point][index], tensor.mean(dim=-1), msg=f"{point} of layer {index}")
            h = expected["residual.block_output"]
            if index < len(blocks) - 1:  # hidden_states[i + 1] is block i's output ...
                torch.testing.assert_close(scores["residual.block_output"][index], hidden[index + 1].mean(dim=-1))
        # ... except the last one: transformers 5 ties it to the final norm's output.
        assert not torch.allclose(hidden[-1], h)
        torch.testing.assert_close(final_norm(model)(h), hidden[-1])
        torch.testing.assert_close(scores["residual.final_norm"], [hidden[-1].mean(dim=-1)])
        torch.testing.assert_close(scores["residual.embeddings"], [hidden[0].mean(dim=-1)])
        logits = model(input_ids=ids).logits
        torch.testing.assert_close(scores["logits.logits"], [logits.mean(dim=-1)])
    for tensor in (t for values in scores.values() for t in values):
        assert tensor.dtype == torch.float32 and not tensor.requires_grad


def test_gpt2_embeddings_include_the_position_embeddings(tiny_gpt2):
    model = tiny_gpt2[0]
    ids = token_ids()
    captured, _ = capture(model, ["residual.embeddings"], ids=ids)
    with torch.no_grad():
        embeddings = model.transformer.wte(ids) + model.transformer.wpe(torch.arange(ids.shape[1]))
    torch.testing.assert_close(captured.scores["residual"], [embeddings.mean(dim=-1)])


@pytest.mark.parametrize("name", list(HAND))
def test_found_and_missing_per_architecture(name, request):
    captured, _ = capture(model_of(request, name), HOOK_TYPES)
    assert captured.missing == MISSING[name]
    assert captured.found == [n for n in ALL if n not in MISSING[name]]
    assert set(captured.scores) == set(HOOK_TYPES)


def test_all_points_in_one_forward_are_grouped_by_type(tiny_llama):
    model = tiny_llama[0]
    captured, _ = capture(model, HOOK_TYPES)
    layers = len(transformer_layers(model))
    assert len(captured.scores["mlp"]) == layers
    assert len(captured.scores["attention"]) == 6 * layers
    assert len(captured.scores["residual"]) == 6 * layers + 2
    assert len(captured.scores["logits"]) == 1
    # The same numbers as each point captured alone, whatever the order of recording.
    alone = scores_of_each_point(model, token_ids())
    for kind in HOOK_TYPES:
        expected = sorted((t for n, v in alone.items() if n.startswith(kind + ".") for t in v), key=lambda t: t.sum())
        got = sorted(captured.scores[kind], key=lambda t: t.sum())
        torch.testing.assert_close(got, expected)


def test_layers_select_blocks_for_per_layer_points_only(tiny_llama):
    model = tiny_llama[0]
    everything, _ = capture(model, ["residual.block_output", "residual.embeddings", "logits"])
    last, _ = capture(model, ["residual.block_output", "residual.embeddings", "logits"], layers=[-1])
    # Recorded in forward order: the embeddings, then the chosen blocks' outputs.
    full = everything.scores["residual"]
    assert len(full) == 1 + 3 and len(last.scores["residual"]) == 1 + 1
    torch.testing.assert_close(last.scores["residual"], [full[0], full[3]])
    torch.testing.assert_close(last.scores["logits"], everything.scores["logits"])

    captured, _ = capture(model, HOOK_TYPES, layers=[-1])
    counts = {kind: len(values) for kind, values in captured.scores.items()}
    assert counts == {"mlp": 1, "attention": 6, "residual": 6 + 2, "logits": 1}
    duplicate, _ = capture(model, ["mlp"], layers=[0, -3])  # both are block 0 of 3
    assert len(duplicate.scores["mlp"]) == 1
    with pytest.raises(ValueError, match="empty list of layers"):
        capture(model, ["mlp"], layers=[])


def test_logits_to_keep_shortens_only_the_logits(tiny_llama):
    model = tiny_llama[0]
    captured, output = capture(model, ["logits", "residual.final_norm"], logits_to_keep=2)
    assert output.logits.shape[1] == 2
    torch.testing.assert_close(captured.scores["logits"], [output.logits.mean(dim=-1)])
    assert captured.scores["residual"][0].shape == (2, 6)


def test_hooks_are_removed_on_exit_and_on_errors(tiny_llama):
    model = tiny_llama[0]
    before = hook_count(model)
    with torch.no_grad(), captured_activations(model, HOOK_TYPES, None) as captured:
        assert hook_count(model) > before
        model(input_ids=token_ids())
    recorded = {kind: len(values) for kind, values in captured.scores.items()}
    assert hook_count(model) == before
    with torch.no_grad():
        model(input_ids=token_ids())
    assert {kind: len(values) for kind, values in captured.scores.items()} == recorded

    with pytest.raises(RuntimeError, match="boom"), captured_activations(model, HOOK_TYPES, None):
        raise RuntimeError("boom")
    assert hook_count(model) == before


def test_peft_model_with_adapters_disabled_gives_the_base_model_scores():
    from peft import LoraConfig, get_peft_model

    from tokenpo.harness.models.tiny import build_tiny_model

    base, _ = build_tiny_model("llama")
    expected, _ = capture(base, HOOK_TYPES)
    # Random (not zero) adapters on q and v, so enabled adapters change the scores.
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    policy = get_peft_model(build_tiny_model("llama")[0], config).eval()

    with policy.disable_adapter():
        disabled, _ = capture(policy, HOOK_TYPES)
    assert disabled.found == expected.found
    for kind in HOOK_TYPES:
        torch.testing.assert_close(disabled.scores[kind], expected.scores[kind])

    enabled, _ = capture(policy, ["attention.q"])
    first_layer_q = expected.scores["attention"][0]
    assert not torch.allclose(enabled.scores["attention"][0], first_layer_q)


def test_rotary_points_follow_the_attention_q_norm():
    """Qwen3 rotates q_norm(q_proj(x)): the rotary points start from the normalised q."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
    )
    torch.manual_seed(3)
    model = Qwen3ForCausalLM(config).eval()
    with torch.no_grad():
        attention = model.model.layers[0].self_attn
        attention.q_norm.weight.uniform_(0.5, 2.0)  # not the identity
        ids = token_ids()
        captured, output = capture(
            model, ["attention.q_rotary", "attention.k_rotary"], ids=ids, output_hidden_states=True
        )
        x = model.model.layers[0].input_layernorm(output.hidden_states[0])
        q = attention.q_norm(heads(attention.q_proj(x), 8).transpose(1, 2)).transpose(1, 2)
        k = attention.k_norm(heads(attention.k_proj(x), 8).transpose(1, 2)).transpose(1, 2)
        theta = config.rope_parameters["rope_theta"]
    expected = [flat(rotary(q, theta, 8)).mean(dim=-1), flat(rotary(k, theta, 8)).mean(dim=-1)]
    torch.testing.assert_close(captured.scores["attention"], expected)


# ------------------------------------------------------------------ selection


def test_resolve_points_expands_types_deduplicates_and_orders():
    assert resolve_points(["logits", "mlp"]) == ["mlp.post_act", "logits.logits"]
    assert resolve_points(["residual.block_output", "attention.q", "residual", "attention.q"]) == [
        "attention.q",
        *(f"residual.{point}" for point in HOOK_POINTS["residual"]),
    ]
    assert resolve_points("mlp") == ["mlp.post_act"]
    assert resolve_points(HOOK_TYPES) == ALL and len(ALL) == 16
    assert set(MODEL_LEVEL_POINTS) <= set(ALL) and len(PER_LAYER) == 13


@pytest.mark.parametrize("entry", ["mlp.q", "attn", "attention.", "residual.post_mlp", "Logits"])
def test_resolve_points_names_the_bad_entry(entry):
    with pytest.raises(ValueError, match=f"unknown activation hook '{entry}'"):
        resolve_points(["mlp", entry])


def test_resolve_points_needs_a_selection():
    with pytest.raises(ValueError, match="no activation hook points"):
        resolve_points([])


# ------------------------------------------------------------------ the mask


def test_activation_mask_by_type_and_flat_by_hand():
    mask = torch.tensor([[0.0, 1, 1, 1]])
    scores = {
        # Completion columns 1..3 rescale to [0, .5, 1] and [1, .5, 0]: their type's mean is .5.
        "attention": [torch.tensor([[9.0, 0, 1, 2]]), torch.tensor([[0.0, 2, 1, 0]])],
        "logits": [torch.tensor([[5.0, 3, 3, 4]])],  # → [0, 0, 1]
        "mlp": [],  # a type without tensors does not count
    }
    by_type = activation_mask(scores, mask)
    torch.testing.assert_close(by_type, torch.tensor([[0.0, 0.25, 0.25, 0.75]]))
    flat_mean = activation_mask(scores, mask, aggregation="flat")
    torch.testing.assert_close(flat_mean, torch.tensor([[0.0, 1 / 3, 1 / 3, 2 / 3]]))
    assert by_type.dtype == torch.float32 and not by_type.requires_grad


def test_activation_mask_constant_row_gets_one_on_its_completion():
    mask = torch.tensor([[1.0, 1, 0], [0, 1, 1], [0, 0, 0]])
    score = torch.tensor([[2.0, 2, 7], [1, 3, 3], [4, 5, 6]], requires_grad=True)
    # Row 0: constant on its completion (the 7 is outside); row 1: [3, 3] also; row 2: no completion.
    result = activation_mask({"residual": [score]}, mask)
    torch.testing.assert_close(result, torch.tensor([[1.0, 1, 0], [0, 1, 1], [0, 0, 0]]))
    assert not result.requires_grad


def test_activation_mask_equals_the_official_z_normalise_then_rescale():
    generator = torch.Generator().manual_seed(0)
    mask = torch.tensor([[0.0, 0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1, 1]])
    score = torch.randn(2, 7, generator=generator)
    expected = torch.zeros(2, 7)
    for row in range(2):
        values = score[row][mask[row].bool()]
        z = (values - values.mean()) / values.std()
        expected[row][mask[row].bool()] = (z - z.min()) / (z.max() - z.min())
    torch.testing.assert_close(activation_mask({"mlp": [score]}, mask), expected)


def test_activation_mask_errors():
    mask = torch.ones(1, 3)
    with pytest.raises(ValueError, match="no activation scores"):
        activation_mask({"mlp": []}, mask)
    with pytest.raises(ValueError, match="shape"):
        activation_mask({"mlp": [torch.ones(1, 4)]}, mask)
    with pytest.raises(ValueError, match="aggregation"):
        activation_mask({"mlp": [torch.ones(1, 3)]}, mask, aggregation="sum")  # type: ignore[arg-type]
