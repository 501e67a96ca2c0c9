"""One transformer encoder block written out op by op: attention (matmul, softmax),
layernorm, a gelu MLP and residual adds. Several of these ops have no quantized kernel,
so they stay as float ops between q/dq pairs."""
import math

import torch
from torch import nn
from torch.nn import functional as F

from quantviz.model_spec import ModelSpec

SEQ, DIM, HEADS = 8, 32, 2


class EncoderBlock(nn.Module):
    def __init__(self, dim: int = DIM, heads: int = HEADS) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h = self.norm1(x)
        q, k, v = self.qkv(h).reshape(b, SEQ, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim), dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, SEQ, DIM)
        x = x + self.proj(out)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class TinyTransformer(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.block = EncoderBlock()
        self.head = nn.Linear(DIM, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x).mean(dim=1))


def make_spec() -> ModelSpec:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(5)
    batches = [(torch.randn(2, SEQ, DIM, generator=gen),) for _ in range(8)]
    return ModelSpec(name="tiny_transformer", model=TinyTransformer().eval(), example_inputs=batches[0],
                     calibration_batches=batches[:4], eval_batches=[(b, None) for b in batches[4:]])
