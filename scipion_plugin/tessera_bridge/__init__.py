"""What the Scipion plugin knows about Tessera's programs, without Scipion.

- ``schema``: a program's ``--schema`` JSON (docs/schema.md) mapped onto a Scipion protocol form
  (sections, parameters, conditions, parallel section) and the form's values back onto the
  program's ``--params`` JSON.
- ``outputs``: a finished run folder (``outputs.json``, the particle set, FSC curves, MRC headers)
  read into plain data from which the plugin creates Scipion objects.
- ``run_files``: the names, keys and versions of a run folder's files, from their one declaration
  (protocols/common/run_files.json, which the programs' C++ header is also written from).

Nothing here imports pyworkflow or pwem, so this mapping is tested with plain Python
(scipion_plugin/tests/test_schema_form.py, test_outputs.py, test_run_files.py); the ``tessera``
package applies it to real Scipion forms and objects.
"""
