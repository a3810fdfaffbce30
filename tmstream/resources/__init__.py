"""tmstream's packaged data files, one subpackage per folder of the source tree.

pyproject's ``package-dir`` maps ``tmstream.resources.config`` onto ``config/``, ``.schemas`` onto
``schemas/``, ``.prometheus``, ``.alertmanager`` and ``.kafka`` onto their ``deploy/`` folders: an
editable install reads the checkout's files, a wheel carries copies. Read them through
``tmstream.ground.resources``.
"""
