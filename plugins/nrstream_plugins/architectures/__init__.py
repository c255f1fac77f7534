"""Built-in architectures, each an ordinary plugin module (entry-point group ``nrstream``).

===========  =============  ===========================================  ===================================
name         module         state (batch first)                          ``aux["hidden"]``
===========  =============  ===========================================  ===================================
``rnn``      ``recurrent``  ``h [B, L, H]``                              top layer's ``h``, ``[B, T, H]``
``gru``      ``recurrent``  ``h [B, L, H]``                              top layer's ``h``, ``[B, T, H]``
``lstm``     ``recurrent``  ``(h, c)``, each ``[B, L, H]``               top layer's ``h``, ``[B, T, H]``
``ssm``      ``ssm``        ``[B, L, N, 2]`` complex as (re, im)         top layer's state, ``[B, T, 2N]``
``snn``      ``snn``        ``((v, s, b) per layer..., u [B, C])``       top layer's membrane, ``[B, T, H]``
``mingru``   ``minimal``    ``h [B, L, H]``                              top layer's ``h``, ``[B, T, H]``
``minlstm``  ``minimal``    ``h [B, L, H]``                              top layer's ``h``, ``[B, T, H]``
``mamba``    ``mamba``      ``(window [B, L, D, k-1], h [B, L, D, N])``  top layer's ``h``, ``[B, T, D*N]``
===========  =============  ===========================================  ===================================

All take ``hidden_size`` (``H``), ``num_layers`` (``L``) and ``dropout``, start from an
all-zero state, and reset a lane by zeroing it. Kind-specific keys are in each class's
docstring; ``lstm`` takes ``forget_gate`` (default ``true``; ``false`` is the LSTM
without a forget gate, ``c_t = c_{t-1} + i_t * g_t``, a per-frame loop). ``mingru``,
``minlstm`` (Feng et al. 2024) and ``mamba`` (a selective SSM, Gu & Dao 2023) train with a
log-space scan in blocks of ``chunk_size`` frames on accelerators and a frame loop on the CPU
(``mamba``'s as one autograd node, ``_selective_scan``), and step frame by frame. Each passes
:func:`nrstream.testing.check_architecture`.
"""
