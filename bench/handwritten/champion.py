"""Hand-written champion/challenger in the style of obproject examples (champion kept in an
alias, mirrored as a Metaflow tag by remove-then-add): the baseline for the generated
FraudModelChampionFlow."""

from metaflow import Parameter, step

from flowpolicy import ProjectFlow, project_trigger


@project_trigger(event="promote_model", branches=["staging"],
                 parameters={"candidate": "instance"})
class HandChampionFlow(ProjectFlow):
    """Make the candidate the champion when it beats it by min_improvement."""

    candidate = Parameter("candidate", default="latest")
    min_improvement = Parameter("min_improvement", default=0.02, type=float)

    @step
    def start(self):
        """Read the candidate."""
        ref = self.prj.asset.peek_model_asset("fraud_model", instance=self.candidate)
        self.candidate_id = ref["id"]
        self.candidate_f1 = float(ref["model_properties"]["annotations"]["f1_score"])
        self.candidate_run = ref["model_properties"]["annotations"]["run_pathspec"]
        self.next(self.decide)

    @step
    def decide(self):
        """Compare with the current champion and move the alias."""
        champion = self.prj.asset.get_alias("fraud_model", "champion")
        self.promote = champion is None
        if champion is not None and champion != self.candidate_id:
            ref = self.prj.asset.peek_model_asset("fraud_model", instance=champion)
            champion_f1 = float(ref["model_properties"]["annotations"]["f1_score"])
            self.promote = self.candidate_f1 - champion_f1 >= self.min_improvement
        if self.promote:
            self.prj.asset.set_alias("fraud_model", "champion", instance=self.candidate_id)
        self.next(self.end)

    @step
    def end(self):
        """Tag the champion's training run and publish."""
        if self.promote:
            from metaflow import Flow, Run, namespace

            namespace(None)
            flow_name, run_id = self.candidate_run.split("/")[:2]
            for run in Flow(flow_name).runs("champion"):
                run.remove_tag("champion")
            Run(f"{flow_name}/{run_id}").add_tag("champion")
            self.prj.publish_event("model_promoted", {"candidate": self.candidate_id})


if __name__ == "__main__":
    HandChampionFlow()
