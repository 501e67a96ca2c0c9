"""A small character-level causal language model trained on text Python itself ships (no download).

The text is ``pydoc_data.topics`` (the standard library's help texts: ``help("with")`` and its 78 siblings). Its
topics are split by name, so held-out text is text the model never saw: every 5th topic in sorted order is held
out (evaluation and generation), the rest is training text; calibration windows come from the training text.

Tokens are characters: newline and printable ASCII (96), plus one unknown token for the rest (0.1% of the text).
The model is GPT-shaped and small (2 pre-norm blocks, width 64, 4 heads, eager matmul/softmax attention with a
causal-mask buffer, GELU MLP, learned positions): it takes ``tokens`` (1, 64) int64 and returns next-token logits
(1, 64, 97). ``text_lm.pt`` (float16 state_dict, 176 KB, loaded as float32) comes from::

    python -m sample_models.text_lm --train     # 1500 steps of 32 windows; prints the held-out perplexity

(147 s of CPU, 163 s wall on a 2-core machine at load 4-6: not seconds; ``--steps 400`` takes about a third of
that and gives a clearly worse model.) Held-out perplexity of the shipped weights: 6.37 on the 16 evaluation
windows (uniform: 97).

``make_spec()`` gives evaluation batches whose labels are the next characters (so the run reports next-token
accuracy) and a :class:`~quantviz.model_spec.LanguageModelTask`, so the run stage also reports perplexity, top-1
agreement with the float model and greedy generation from a held-out prompt.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn

from quantviz.model_spec import LanguageModelTask, ModelSpec

WEIGHTS = Path(__file__).with_name("text_lm.pt")
CONTEXT, WIDTH, HEADS, LAYERS = 64, 64, 4, 2
CHARS = "\n" + "".join(chr(c) for c in range(32, 127))
VOCAB = len(CHARS) + 1  # + unknown
UNKNOWN = VOCAB - 1
HOLD_OUT_EVERY = 5  # every 5th topic (sorted by name) is held out
N_CALIB, N_EVAL, GENERATE_STEPS = 8, 16, 32
_INDEX = {c: i for i, c in enumerate(CHARS)}


def encode(text: str) -> torch.Tensor:
    """Character ids (int64): ``encode("if")`` -> tensor([74, 71])."""
    return torch.tensor([_INDEX.get(c, UNKNOWN) for c in text], dtype=torch.int64)


def decode(ids) -> str:
    """The text of ids; the unknown token reads as '?'."""
    return "".join(CHARS[i] if 0 <= i < len(CHARS) else "?" for i in (int(x) for x in ids))


def topics() -> tuple[list[str], list[str]]:
    """(training topic names, held-out topic names): disjoint, by a fixed rule."""
    from pydoc_data.topics import topics as all_topics

    names = sorted(all_topics)
    held = names[::HOLD_OUT_EVERY]
    return [n for n in names if n not in held], held


def corpus(names: list[str]) -> str:
    from pydoc_data.topics import topics as all_topics

    return "\n".join(all_topics[n] for n in names)


def held_out_text() -> str:
    """The held-out topics without the paragraphs that also occur in the training text (topics share some
    boilerplate, e.g. "See also ..." paragraphs)."""
    train, held = topics()
    training = corpus(train)
    paragraphs = corpus(held).split("\n\n")
    return "\n\n".join(p for p in paragraphs if p.strip() and p not in training)


def held_out_starts(ids: torch.Tensor, training: str, n: int) -> list[int]:
    """``n`` window starts spread over ``ids`` (held-out text) whose CONTEXT + 1 characters do not occur in the
    ``training`` text (a start that does moves on by CONTEXT characters)."""
    stride = (len(ids) - CONTEXT - 1) // n
    starts: list[int] = []
    for i in range(n):
        s = i * stride
        while decode(ids[s:s + CONTEXT + 1]) in training:
            s += CONTEXT
        assert s + CONTEXT + 1 <= len(ids) and s < (i + 1) * stride, "held-out text too short"
        starts.append(s)
    return starts


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.proj = nn.Linear(WIDTH, WIDTH)
        self.fc1, self.fc2 = nn.Linear(WIDTH, 2 * WIDTH), nn.Linear(2 * WIDTH, WIDTH)
        self.register_buffer("mask", torch.triu(torch.full((CONTEXT, CONTEXT), float("-inf")), 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, HEADS, WIDTH // HEADS).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(WIDTH // HEADS) + self.mask[:t, :t], dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, WIDTH))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))


class TextLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, WIDTH)
        self.pos = nn.Embedding(CONTEXT, WIDTH)
        self.blocks = nn.Sequential(*(Block() for _ in range(LAYERS)))
        self.ln = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB)
        self.register_buffer("positions", torch.arange(CONTEXT), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok(tokens) + self.pos(self.positions[: tokens.shape[1]])
        return self.head(self.ln(self.blocks(x)))


def windows(ids: torch.Tensor, starts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, next-character targets) windows of CONTEXT characters at ``starts``."""
    assert starts[-1] + CONTEXT + 1 <= len(ids), "text too short for the windows asked for"
    x = torch.stack([ids[s:s + CONTEXT] for s in starts])
    y = torch.stack([ids[s + 1:s + CONTEXT + 1] for s in starts])
    return x, y


def load_model() -> TextLM:
    model = TextLM()
    state = torch.load(WEIGHTS, weights_only=True)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def make_spec() -> ModelSpec:
    train_names, held_names = topics()
    training = corpus(train_names)
    train_ids, held_ids = encode(training), encode(held_out_text())
    # evaluation: N_EVAL held-out windows spread over the held-out text; the generation prompt is one more
    starts = held_out_starts(held_ids, training, N_EVAL + 1)
    x, y = windows(held_ids, starts[:-1])
    step = (len(train_ids) - CONTEXT - 1) // N_CALIB
    calib_x, _ = windows(train_ids, [i * step for i in range(N_CALIB)])
    prompt = held_ids[starts[-1]:starts[-1] + CONTEXT].unsqueeze(0)
    task = LanguageModelTask(prompt=prompt, steps=GENERATE_STEPS, decode=decode,
                             text=f"pydoc_data.topics: {len(held_names)} held-out topics "
                                  f"({len(held_ids):,} characters not in the other {len(train_names)}, "
                                  "the training text)")
    return ModelSpec(name="text_lm", model=load_model(), example_inputs=(x[:1],),
                     calibration_batches=[(calib_x[i:i + 1],) for i in range(N_CALIB)],
                     eval_batches=[((x[i:i + 1],), y[i:i + 1]) for i in range(N_EVAL)],
                     input_names=("tokens",), language_model=task)


def train(steps: int = 1500, batch: int = 32, seed: int = 0) -> float:
    """Train from a fixed seed on the training topics, write ``text_lm.pt``; returns the held-out perplexity."""
    torch.manual_seed(seed)
    train_names, _ = topics()
    ids, held = encode(corpus(train_names)), encode(held_out_text())
    model = TextLM()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - CONTEXT - 1, (batch,))
        x = torch.stack([ids[s:s + CONTEXT] for s in starts])
        y = torch.stack([ids[s + 1:s + CONTEXT + 1] for s in starts])
        loss = nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    x, y = windows(held, [i * ((len(held) - CONTEXT - 1) // 256) for i in range(256)])
    with torch.no_grad():
        ppl = math.exp(nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1)).item())
    torch.save({k: v.half() for k, v in model.state_dict().items()}, WEIGHTS)
    return ppl


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train and write text_lm.pt")
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    if args.train:
        import time

        t0 = time.perf_counter()
        perplexity = train(args.steps)
        print(f"held-out perplexity {perplexity:.2f} (uniform: {VOCAB}); {time.perf_counter() - t0:.1f} s; "
              f"wrote {WEIGHTS}")
