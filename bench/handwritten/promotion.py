"""Hand-written promotion in the style of obproject examples (re-checks the metric, then
promote_assets): the baseline for the generated FraudModelPromotionFlow."""

from metaflow import Parameter, step

from flowpolicy import ProjectFlow, project_trigger


@project_trigger(event="promote_model", branches=["dev"],
                 parameters={"instance": "instance"})
@project_trigger(event="model_promoted", branches=["staging"],
                 parameters={"instance": "candidate"})
class HandPromotionFlow(ProjectFlow):
    """Promote a fraud_model instance from dev to staging when its f1_score is good enough."""

    source = Parameter("source", default="dev")
    target = Parameter("target", default="staging")
    instance = Parameter("instance", default="latest")

    @step
    def start(self):
        """Read the instance on the source branch."""
        from flowpolicy import Asset

        ref = Asset(project=self.prj.project, branch=self.source).peek_model_asset(
            "fraud_model", instance=self.instance)
        self.instance_id = ref["id"]
        self.f1_score = float(ref["model_properties"]["annotations"]["f1_score"])
        self.next(self.decide)

    @step
    def decide(self):
        """Only dev -> staging, only good models."""
        allowed = (self.source, self.target) == ("dev", "staging") and self.f1_score >= 0.8
        if not allowed:
            raise RuntimeError(f"promotion of fraud_model {self.instance_id} refused")
        self.next(self.end)

    @step
    def end(self):
        """Promote."""
        from flowpolicy.runtime.promote import promote_assets

        self.result = promote_assets(self.prj.project, self.source, self.target,
                                     kinds=["models"], asset="fraud_model",
                                     instance=self.instance_id, with_aliases=False)


if __name__ == "__main__":
    HandPromotionFlow()
