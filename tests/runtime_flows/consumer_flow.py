"""Consumes the producer's assets by every spec form (explicit @project on the class)."""

from metaflow import project, step

from flowpolicy import ProjectFlow
from flowpolicy.runtime import project_trigger


@project_trigger(event="models_ready")
@project(name="runtime_demo")
class ConsumerFlow(ProjectFlow):
    """Load models and data registered by ProducerFlow."""

    @step
    def start(self):
        """Resolve latest, latest-1, v1 and @champion; load the artifacts."""
        self.latest = self.prj.get_model("demo_model")
        self.previous = self.prj.get_model("demo_model", instance="latest-1")
        self.first = self.prj.get_model("demo_model", instance="v1")
        self.champion = self.prj.get_model("demo_model", instance="@champion")
        self.features = self.prj.get_data("demo_features")
        self.ref = self.prj.asset.consume_model_asset("demo_model", instance="latest")
        self.instance_ids = [i.id for i in self.prj.list_model_instances("demo_model")]
        self.prj.publish_event("models_consumed", {"latest": self.ref["id"]})
        from metaflow.flowspec import FlowStateItems

        decorators = type(self)._flow_state[FlowStateItems.FLOW_DECORATORS]
        self.trigger_events = [d.attributes.get("event") for d in decorators.get("trigger", [])]
        self.next(self.end)

    @step
    def end(self):
        """Nothing left to do."""


if __name__ == "__main__":
    ConsumerFlow()
