"""The report's GPT-2-style transformer, readable top to bottom (after nanoGPT).

Token + learned position embeddings, ``n_layer`` pre-LayerNorm blocks (causal self-attention
through one of ``attention``'s kernels, ``scaled_dot_product_attention`` unless
``set_attention`` picks another, then a GELU feed-forward), a final LayerNorm and an LM head
tied to the token embedding. All linear layers and LayerNorms have biases, as in
GPT-2; with these choices the analytic count in ``count_parameters`` is exact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from h2q_lib.core.errors import ConfigError
from h2q_lib.model.attention import DEFAULT_KERNEL, causal_attention, check_kernel


@dataclass
class GPTConfig:
    """The model's shape (the report's is ``report.REPORT.model_config(vocab_size)``)."""

    vocab_size: int
    block_size: int  # context length (learned position embeddings)
    n_layer: int
    n_head: int
    n_embd: int
    n_ff: int
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "n_ff"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(name, value, "a positive integer")
        if self.n_embd % self.n_head:
            raise ConfigError("n_head", self.n_head, f"a divisor of n_embd={self.n_embd}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("dropout", self.dropout, "a number in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


def count_parameters(cfg: GPTConfig) -> int:
    """Parameters of ``GPT(cfg)`` computed from the configuration alone.

    N = V·d + T·d                      (token and position embeddings; the head is tied)
      + L·(4d + 3d² + 3d + d² + d      (two LayerNorms, QKV and output projections)
           + d·f + f + f·d + d)        (feed-forward)
      + 2d                             (final LayerNorm)
    """
    d, f, L = cfg.n_embd, cfg.n_ff, cfg.n_layer
    block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d)
    return cfg.vocab_size * d + cfg.block_size * d + L * block + 2 * d


def vocab_size_for_parameters(total: int, cfg: GPTConfig) -> float:
    """The vocabulary size V that makes ``count_parameters`` equal ``total`` (may be fractional)."""
    rest = count_parameters(GPTConfig(**{**cfg.to_dict(), "vocab_size": 1})) - cfg.n_embd
    return (total - rest) / cfg.n_embd


def flops_per_token(cfg: GPTConfig, n_params: int | None = None) -> int:
    """Training FLOPs per token, nanoGPT's estimate: 6·N + 12·L·d·T (forward + backward)."""
    n = count_parameters(cfg) if n_params is None else n_params
    return 6 * n + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout
        self.kernel = DEFAULT_KERNEL  # how, not what: no parameter, not in the state dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = causal_attention(q, k, v, self.kernel, self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class FeedForward(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.up = nn.Linear(cfg.n_embd, cfg.n_ff)
        self.down = nn.Linear(cfg.n_ff, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.gelu(self.up(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.ff = FeedForward(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ff(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # weight tying, as the report lists
        self.apply(self._init_weights)
        # GPT-2's scaled init of the residual projections
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "ff.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def set_attention(self, kernel: str) -> GPT:
        """Every block's attention through ``kernel`` (one of ``attention.KERNELS``): the same
        function computed another way, chosen by the attention rule of a run."""
        check_kernel(kernel)
        for block in self.blocks:
            block.attn.kernel = kernel
        return self

    def num_parameters(self) -> int:
        """Distinct parameters (the tied head is counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits ``(B, T, V)``; with ``targets`` also the mean cross-entropy in nats."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ConfigError(
                "sequence length", T, f"at most the model's block_size={self.config.block_size}"
            )
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 0.8,
        top_k: int | None = 40,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample ``max_new_tokens`` continuations of ``idx`` (B, T)."""
        for _ in range(max_new_tokens):
            context = idx[:, -self.config.block_size :]
            logits = self(context)[:, -1, :].float() / max(temperature, 1e-6)
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits[logits < kth] = -float("inf")
            probs = F.softmax(logits, dim=-1)
            # sample on the CPU so that a seeded CPU generator serves every device
            nxt = torch.multinomial(probs.cpu(), num_samples=1, generator=generator)
            nxt = nxt.to(idx.device)
            idx = torch.cat((idx, nxt), dim=1)
        return idx
