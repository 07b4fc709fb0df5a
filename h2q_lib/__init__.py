"""h2q_lib: reproduce and audit the H2Q-AGI WikiText-103 training report."""

__version__ = "0.1.0"
