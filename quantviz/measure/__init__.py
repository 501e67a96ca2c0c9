"""What stages measure while they run, below the stages and the analyses: one definition of each metric
(``metrics``) and the run stage's criterion for a wrong program (``verdict``). Stages import this, never
``quantviz.numerics`` (the analyses that run after a flow)."""
