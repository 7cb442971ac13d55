"""The wire contract (``../shared/CONTRACT.md``), the ground floor every other package stands on:
the records on each topic and their strict JSON codec (``records``), Fengxian's districts,
the partition a merchant's records go to, and the labelled-outcome files worlds are judged by.
Imports nothing of the project and no I/O library."""
