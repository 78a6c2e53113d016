"""A scikit-learn LogisticRegression for MLServer (run in MLServer's venv):

    python mlserver_model.py train MODEL_DIR HIGHS   fit on seeded data, each column uniform in [0, its high),
                                                     save model.joblib and model-settings.json
    python mlserver_model.py predict_proba MODEL_DIR IN.npy OUT.npy   the model's own probabilities
"""

import json
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression


def train(model_dir: Path, highs: list[float]) -> None:
    rng = np.random.default_rng(7)
    unit = rng.uniform(size=(2_000, len(highs)))
    weights = rng.normal(size=len(highs))
    y = (unit @ weights + rng.normal(scale=0.3, size=len(unit)) > weights.sum() / 2).astype(int)
    x = unit * np.asarray(highs)
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=1_000).fit(x, y), model_dir / "model.joblib")
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": model_dir.name, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"}}))


def predict_proba(model_dir: Path, matrix: Path, out: Path) -> None:
    model = joblib.load(model_dir / "model.joblib")
    np.save(out, model.predict_proba(np.load(matrix)))


if __name__ == "__main__":
    command, model_dir, *rest = sys.argv[1:]
    if command == "train":
        train(Path(model_dir), [float(h) for h in rest[0].split(",")])
    else:
        predict_proba(Path(model_dir), Path(rest[0]), Path(rest[1]))
