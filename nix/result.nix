# mkResult, the one wrapper every public function returns through: the
# derivation with its passthru attributes on top (also kept as .passthru),
# meta, and, as nixpkgs' results have them, .override (lib.makeOverridable),
# .overrideAttrs and .overrideDerivation.
rec {
  # drv: the derivation (or an earlier result, with its passthru and meta).
  # function, args: what made it; result.override CHANGES is `function`
  # called again with `args` updated by CHANGES, an attribute set or a
  # function of the old arguments (for a list argument: the new list).
  mkResult = { drv, passthru ? { }, meta ? { }, function ? null, args ? { } }:
    let
      # The attributes the derivation was made of, changed as
      # overrideAttrs takes them: a set, a function of the old attributes,
      # or (nixpkgs' newer form) final: prev: { ... }.
      changed = f:
        let
          old = drv.drvAttrs // { inherit passthru meta; };
          once = if builtins.isFunction f then f old else f;
          final = old // (if builtins.isFunction once then f final old else once);
        in final;
      again = attrs: mkResult {
        drv = builtins.derivation (builtins.removeAttrs attrs [ "passthru" "meta" ]);
        passthru = attrs.passthru or passthru;
        meta = attrs.meta or meta;
      };
    in
    drv // passthru // { inherit passthru meta; }
    // (if function == null then { } else {
      override = changes:
        let new = if builtins.isFunction changes then changes args else changes;
        in function (if builtins.isAttrs args then args // new else new);
    })
    // (if drv ? drvAttrs then {
      # The same derivation with some attributes changed; passthru and meta kept.
      overrideAttrs = f: again (changed f);
      # nixpkgs' lib.overrideDerivation: f gets the old attributes only.
      overrideDerivation = f: again (drv.drvAttrs // f drv.drvAttrs);
    } else { });
}
