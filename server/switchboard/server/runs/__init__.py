"""The run state machine: start a run, record step outcomes, waits and their resumption."""
