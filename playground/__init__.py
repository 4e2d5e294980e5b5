"""playground: watch a base and an instruction-tuned model answer side by side."""

__version__ = "0.1.0"
