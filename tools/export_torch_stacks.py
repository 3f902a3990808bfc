"""Export common layer stacks with torch.onnx.export into tests/data/torch/ (small, random-initialized).

The tests check edgenn's import and float reference against onnxruntime on what torch's exporter really
writes (Shape/Gather chains from x.view(x.size(0), -1), Identity nodes, BatchNorm, opset 11 forms) without
needing torch at test time. Run: pip install torch==2.13.0 && python tools/export_torch_stacks.py
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from train_models import export_onnx

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "torch"


class ViewFlatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


def stacks() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    return {
        "mlp": (
            nn.Sequential(
                nn.Linear(20, 32),
                nn.ReLU(),
                nn.Dropout(0.2),
                nn.Linear(32, 16),
                nn.Tanh(),
                nn.Linear(16, 4),
                nn.Softmax(dim=1),
            ),
            (20,),
        ),
        "cnn_batchnorm": (
            nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1),
                nn.BatchNorm2d(8),
                nn.ReLU6(),
                nn.MaxPool2d(2),
                nn.Conv2d(8, 16, 3),
                nn.BatchNorm2d(16),
                nn.ReLU(),
                ViewFlatten(),
                nn.Linear(16 * 2 * 2, 5),
            ),
            (3, 8, 8),
        ),
        "depthwise_separable": (
            nn.Sequential(
                nn.Conv2d(3, 8, 3, stride=2, padding=1),
                nn.BatchNorm2d(8),
                nn.ReLU(),
                nn.Conv2d(8, 8, 3, padding=1, groups=8),
                nn.BatchNorm2d(8),
                nn.Hardswish(),
                nn.Conv2d(8, 16, 1),
                nn.BatchNorm2d(16),
                nn.LeakyReLU(0.1),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(16, 10),
            ),
            (3, 16, 16),
        ),
        "cnn_1d": (
            nn.Sequential(
                nn.Conv1d(2, 8, 5, padding=2),
                nn.BatchNorm1d(8),
                nn.ReLU(),
                nn.Conv1d(8, 8, 3, stride=2, dilation=2),
                nn.Sigmoid(),
                nn.AvgPool1d(2),
                nn.Flatten(),
                nn.Linear(8 * 7, 3),
            ),
            (2, 32),
        ),
        "residual": (
            nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1),
                nn.ReLU(),
                Residual(8),
                nn.MaxPool2d(2),
                nn.Conv2d(8, 8, 1),
                nn.PReLU(8),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(8, 4),
            ),
            (3, 8, 8),
        ),
    }


def randomize_batchnorm(model: nn.Module) -> None:
    """Non-trivial running statistics, so BatchNorm folding is really exercised."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for opset in (11, 17):
        for name in stacks():
            # seed before building, so every export starts from the same weights
            torch.manual_seed(0)
            model, shape = stacks()[name]
            randomize_batchnorm(model)
            path = OUT / f"{name}_opset{opset}.onnx"
            export_onnx(model, shape, path, opset, names=("x", "y"))
            print(f"wrote {path.name} ({path.stat().st_size} B)")


if __name__ == "__main__":
    main()
