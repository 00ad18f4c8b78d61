"""A tiny Qwen2-architecture model with random weights, built locally in about a second.

It trains, generates and loads with `mlx_lm.load(path)` like a real checkpoint, so
`etl train` can be exercised end to end (tests, `etl demo --train`) with nothing
downloaded. What it says is noise: it exists to prove the plumbing, not the voice.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# The ChatML layout of the Qwen2.5 instruct models, without their tool-calling parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Enough text for byte-level BPE to learn a few hundred merges of chat-like English.
CORPUS = """\
The deploy failed with a 503 error on the staging server. Show me the logs.
What changed since the last deploy? Roll it back and page whoever is on call.
Should we refactor the auth module or just patch the bug? Patch it. Ship the fix,
then refactor next sprint. The PR is ready for review. Merge it.
We need to decide between Kafka and RabbitMQ for the event bus. Rabbit, we are small.
I'm stuck on this TypeScript type error, can you help? Paste the error and the type.
What's the status of the app update? Waiting on review, should land Thursday.
The CI pipeline is taking 45 minutes. Can we speed it up? Cache the deps, split the tests.
Should I write tests for this or ship it as-is? Ship it, add a test for the bug after.
The client wants a progress update by Friday. Draft it, I'll look tonight.
We're running low on compute credits. Kill the idle boxes first.
ok sounds good. lol yes. no, not today. can you call me later? on my way.
thanks, that helps a lot. see you tomorrow at ten. did you push the branch?
Great question! I'd be happy to help. Let me help you with that. I understand.
Certainly! As an AI language model, I hope this helps. Feel free to ask.
"""


def make_tiny_model(path: Path, *, seed: int = 0) -> Path:
    """Write config.json, model.safetensors and a ChatML tokenizer into `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    _save_tokenizer(tokenizer, path)
    config = _config(vocab_size=tokenizer.get_vocab_size(), eos_id=tokenizer.token_to_id("<|im_end|>"))
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    _save_weights(config, path / "model.safetensors", seed)
    return path


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=list(SPECIAL_TOKENS),
        # Every byte is in the vocabulary, so any text (emoji included) encodes.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    return tokenizer


def _save_tokenizer(tokenizer, path: Path) -> None:
    tokenizer.save(str(path / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "bos_token": None,
        "unk_token": None,
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def _config(vocab_size: int, eos_id: int) -> dict:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "vocab_size": vocab_size,
        "max_position_embeddings": 2048,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "eos_token_id": eos_id,
        "torch_dtype": "float32",
    }


def _save_weights(config: dict, target: Path, seed: int) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import qwen2

    # mlx-lm's own Qwen2 class gives exactly the parameter names its loader expects.
    mx.random.seed(seed)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    mx.save_safetensors(str(target), dict(tree_flatten(model.parameters())))
