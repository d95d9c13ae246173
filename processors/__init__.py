"""coffea processors (``ProcessorABC``) and the executor / Runner factory.

- :mod:`processors.dijet`: the dijet processor (selection, m_jj histograms, cutflow, columns);
- :mod:`processors.runner`: iterative, futures or Dask executors behind ``coffea.processor.Runner``;
- :mod:`processors.fileset`: filesets in coffea's form and a preflight of their ROOT files.
- :mod:`processors.substructure`: N-subjettiness (tau21) of jets from their constituents.
"""
