"""Hand-written quality gate in the style of obproject examples: the baseline that
bench/flows.py compares the generated QualityGateFlow with."""

from metaflow import Parameter, step

from flowpolicy import ProjectFlow, project_trigger


@project_trigger(event="model.fraud_model.new_instance", branches=["dev", "staging"],
                 parameters={"instance": "instance"})
class HandQualityGateFlow(ProjectFlow):
    """Fail the run unless the model's f1_score reaches the threshold."""

    instance = Parameter("instance", default="latest", help="fraud_model instance")
    min_f1_score = Parameter("min_f1_score", default=0.8, type=float)

    @step
    def start(self):
        """Read the model instance."""
        ref = self.prj.asset.peek_model_asset("fraud_model", instance=self.instance)
        self.model_id = ref["id"]
        self.annotations = ref["model_properties"]["annotations"]
        self.next(self.evaluate)

    @step
    def evaluate(self):
        """Compare the metric with the threshold."""
        self.f1_score = float(self.annotations.get("f1_score", "nan"))
        self.passed = self.f1_score >= self.min_f1_score
        self.next(self.end)

    @step
    def end(self):
        """Publish the outcome; fail the run when the gate failed."""
        payload = {"instance": self.model_id, "f1_score": self.f1_score}
        if self.passed:
            self.prj.publish_event("promote_model", payload)
            return
        self.prj.publish_event("quality_gate_failed", payload)
        raise RuntimeError(f"fraud_model {self.model_id}: f1_score {self.f1_score} < "
                           f"{self.min_f1_score}")


if __name__ == "__main__":
    HandQualityGateFlow()
