"""`doctor`: the same checks as `external`, each run and recorded (diagnose), then shown for a terminal
or as JSON (report)."""
