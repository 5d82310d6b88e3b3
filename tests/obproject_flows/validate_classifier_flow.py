"""Promotes a feature branch's classifier to main as @candidate, validates it and marks it
@validated, as the Outerbounds docs' promotion pattern does. Triggered by the training
flow's event and scheduled on main. Written for obproject."""

from metaflow import Parameter, step
from obproject import ProjectFlow, project_schedule, project_trigger
from obproject.assets import Asset, promote_assets


@project_schedule({"main": {"cron": "0 6 * * *"}, "feature/*": {"daily": True}})
@project_trigger(event="classifier_trained")
class ValidateClassifierFlow(ProjectFlow):
    """@candidate on main from the feature branch, @validated when accurate enough."""

    source = Parameter("source", default="feature/x", help="branch the model comes from")
    threshold = Parameter("threshold", type=float, default=0.9)

    @step
    def start(self):
        """Promote the newest classifier of the source branch to main as @candidate."""
        from metaflow import current
        from metaflow.flowspec import FlowStateItems

        decorators = type(self)._flow_state[FlowStateItems.FLOW_DECORATORS]
        self.trigger_events = [d.attributes.get("event") for d in decorators.get("trigger", [])]
        self.schedule = [d.attributes.get("cron") for d in decorators.get("schedule", [])]
        self.metaflow_branch = current.branch_name
        self.candidate_promotion = promote_assets(
            self.prj.project, source=self.source, target="main", asset="classifier")
        main = Asset(project=self.prj.project, branch="main")
        candidate = main.consume_model_asset("classifier", instance="@candidate")
        self.candidate = candidate["id"]
        self.accuracy = float(candidate["model_properties"]["annotations"]["accuracy"])
        self.next(self.validate)

    @step
    def validate(self):
        """Quality gate; on a pass, @validated on main points at the candidate."""
        self.passed = self.accuracy >= self.threshold
        self.validation = None
        if self.passed:
            self.validation = promote_assets(
                self.prj.project, source="main", target="main", asset="classifier",
                instance="@candidate", alias="validated")
        try:
            promote_assets(self.prj.project, source="main", target="main", asset="classifier",
                           instance="@candidate", alias="blessed")
            self.unlisted_alias = None
        except ValueError as exc:
            self.unlisted_alias = str(exc)
        self.prj.publish_event("classifier_validated", {"passed": self.passed})
        self.next(self.end)

    @step
    def end(self):
        """Done."""


if __name__ == "__main__":
    ValidateClassifierFlow()
