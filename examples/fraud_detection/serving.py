"""Serve the fraud model: the loader ``flowpolicy serve`` calls for ``fraud_model``.

    flowpolicy serve fraud_model --branch prod --loader serving:load

``fraud_model`` is registered by ``train_flow.py`` as a Metaflow artifact (a dict of numpy
arrays), so :func:`load` reads it from the training task and returns a function of the rows
a ``POST /predict`` request sends, one JSON object of raw transaction columns per row::

    {"rows": [{"amount": 42.0, "hour": 3, "distance_km": 12.5, "merchant_risk": 0.7,
               "tx_last_24h": 4, "foreign": 1}]}

It answers 1.0 (fraud) or 0.0 per row, with the same ``design_matrix`` and ``predict`` the
training flow measured the model with.
"""

from train_flow import FEATURES, design_matrix, predict


def load(instance):
    """A predictor for ``instance`` (a :class:`flowpolicy.runtime.loading.ModelInstance`)."""
    model = instance.artifact()

    def predict_rows(rows):
        return predict(model, design_matrix(columns(rows)))

    return predict_rows


def columns(rows):
    """The rows as the columns ``design_matrix`` reads; a row without a column is an error
    naming both."""
    import numpy as np

    for number, row in enumerate(rows):
        missing = [name for name in FEATURES if name not in row]
        if missing:
            raise ValueError(f"row {number} has no {', '.join(missing)}")
    return {name: np.array([float(row[name]) for row in rows]) for name in FEATURES}
