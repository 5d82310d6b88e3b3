"""Hand-written drift monitor in the style of obproject examples (numpy KS per column):
the baseline for the generated FraudFeaturesDriftFlow."""

from metaflow import Parameter, step

from flowpolicy import ProjectFlow, project_trigger


def ks_d(a, b):
    import numpy as np

    a, b = np.sort(a), np.sort(b)
    values = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, values, side="right") / a.size
    cdf_b = np.searchsorted(b, values, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


@project_trigger(event="data.fraud_features.new_instance", branches=["dev"],
                 parameters={"current": "instance"})
class HandDriftFlow(ProjectFlow):
    """KS statistic per column between the latest two fraud_features instances."""

    current = Parameter("current", default="latest")
    reference = Parameter("reference", default="latest-1")

    @step
    def start(self):
        """Pin both instances."""
        self.current_id = self.prj.asset.peek_data_asset("fraud_features", self.current)["id"]
        self.reference_id = self.prj.asset.peek_data_asset("fraud_features", self.reference)["id"]
        self.next(self.measure)

    @step
    def measure(self):
        """Compute D per column and register the report."""
        current = self.prj.get_data("fraud_features", instance=self.current_id)
        reference = self.prj.get_data("fraud_features", instance=self.reference_id)
        self.drift_report = {c: ks_d(current[c], reference[c]) for c in current if c in reference}
        worst = max(self.drift_report.values())
        self.level = "high" if worst >= 0.1 else "elevated" if worst >= 0.05 else "normal"
        self.prj.register_data("drift_reports", "drift_report",
                               annotations={"level": self.level, "max_statistic": worst})
        self.next(self.end)

    @step
    def end(self):
        """Alert when the drift is high."""
        if self.level == "high":
            self.prj.publish_event("retrain_required", {"current": self.current_id})


if __name__ == "__main__":
    HandDriftFlow()
