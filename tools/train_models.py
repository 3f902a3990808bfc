"""Train the bundled models and write models/<name>.onnx and models/<name>_test.npz.

Needs torch (CPU) and scikit-learn / mnist1d; not a dependency of edgenn itself:
    pip install torch==2.13.0 scikit-learn mnist1d
    python tools/train_models.py            # all models
    python tools/train_models.py digits_cnn # one
Seeded, single-threaded and deterministic: reruns give the same weights on the same torch build.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

MODELS = Path(__file__).resolve().parent.parent / "models"
SEED = 0


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: first 1297 samples train, last 500 test, pixels / 16."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    return x[:1297], y[:1297], x[-500:], y[-500:]


def mnist1d() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D generated offline with the package's default arguments (4000 train, 1000 test)."""
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    x_train = data["x"].astype(np.float32)[:, None, :]
    x_test = data["x_test"].astype(np.float32)[:, None, :]
    return x_train, data["y"].astype(np.int64), x_test, data["y_test"].astype(np.int64)


def digits_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def digits_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


def mnist1d_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 32, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(32, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(32, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(320, 10),
    )


# name -> (model factory, data, input shape without batch, epochs, learning rate)
RECIPES: dict[
    str, tuple[Callable[[], nn.Module], Callable[[], tuple], tuple[int, ...], int, float]
] = {
    "digits_mlp": (digits_mlp, digits, (64,), 60, 1e-3),
    "digits_cnn": (digits_cnn, lambda: _image(digits()), (1, 8, 8), 60, 2e-3),
    "mnist1d_cnn": (mnist1d_cnn, mnist1d, (1, 40), 80, 2e-3),
}


def _image(d: tuple) -> tuple:
    x_train, y_train, x_test, y_test = d
    return x_train.reshape(-1, 1, 8, 8), y_train, x_test.reshape(-1, 1, 8, 8), y_test


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float) -> None:
    gen = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), 64):
            idx = order[start : start + 64]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def export_onnx(
    model: nn.Module,
    shape: tuple[int, ...],
    path: Path,
    opset: int = 17,
    names: tuple[str, str] = ("input", "logits"),
) -> None:
    """torch.onnx.export (the TorchScript exporter) with a symbolic batch dimension."""
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # PRESERVE keeps BatchNormalization as a node (EVAL would fold it): edgenn's own pass folds it
        torch.onnx.export(
            model,
            (torch.zeros(1, *shape),),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[names[0]],
            output_names=[names[1]],
            dynamic_axes={names[0]: {0: "batch"}, names[1]: {0: "batch"}},
            training=torch.onnx.TrainingMode.PRESERVE,
        )


def main(names: list[str]) -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    MODELS.mkdir(exist_ok=True)
    results = {}
    for name in names or list(RECIPES):
        factory, data, shape, epochs, lr = RECIPES[name]
        torch.manual_seed(SEED)
        x_train, y_train, x_test, y_test = data()
        model = factory()
        train(model, x_train, y_train, epochs, lr)
        results[name] = accuracy(model, x_test, y_test)
        export_onnx(model, shape, MODELS / f"{name}.onnx")
        np.savez_compressed(MODELS / f"{name}_test.npz", x=x_test, y=y_test)
        print(
            f"{name}: float test accuracy {results[name]:.4f} ({len(y_test)} samples)", flush=True
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
