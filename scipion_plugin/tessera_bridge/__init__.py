"""What the Scipion plugin knows about Tessera's programs, without Scipion.

- ``schema``: a program's ``--schema`` JSON (docs/schema.md) mapped onto a Scipion protocol form
  (sections, parameters, conditions, parallel section) and the form's values back onto the
  program's ``--params`` JSON.
- ``outputs``: a finished run folder (``outputs.json``, the particle set, FSC curves, MRC headers)
  read into plain data from which the plugin creates Scipion objects.

Nothing here imports pyworkflow or pwem, so this mapping is tested with plain Python
(scipion_plugin/tests/test_schema_form.py, test_outputs.py); the ``tessera`` package applies it to
real Scipion forms and objects.
"""
