"""``edgeinfer-validate``: the post-deploy performance gate for an EdgeInfer sidecar.

The load engine is the package ``edgeinfer_load`` (standard library only). The Ansible module
``edgeinfer.deploy.edgeinfer_benchmark`` runs the same files on the edge: the collection holds
them as ``plugins/module_utils/_load/``, one link per file, which Ansible's packager ships with
the module. So the deploy gate and the operator's command measure alike.
"""
