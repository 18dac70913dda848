"""The n beside each eval result row: what its rate is over (pure)."""

from act_trainer.stages.evaluate import count_for


def test_a_task_types_rate_is_over_that_types_episodes_and_the_rest_over_the_splits():
    counts = {"episodes": 5, "episodes.boil": 2, "episodes.melt": 3, "turns": 40}
    assert count_for("success_rate", counts, "episodes") == 5
    assert count_for("episode_malformed_rate", counts, "episodes") == 5
    assert count_for("success_rate.boil", counts, "episodes") == 2
    assert count_for("success_rate.melt", counts, "episodes") == 3
    assert count_for("next_action_accuracy", {"action_states": 4}, "action_states") == 4
