# Small helpers in builtins only (the stand-in pkgs, tests/hostpkgs.nix, has
# no lib): case folding, lists, store path hashes, and the type checks that
# name the function, the argument and what it got.
rec {
  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  toLower = builtins.replaceStrings upper lower;
  toList = x: if x == null then [ ] else if builtins.isList x then x else [ x ];
  hashPart = drv: builtins.head (builtins.match "([^-]*)-.*"
    (baseNameOf (builtins.unsafeDiscardStringContext (toString drv))));

  # Type checks: one line naming the function, the argument and what it got.
  describe = v: let t = builtins.typeOf v; in
    if t == "string" then "the string \"${v}\""
    else if t == "int" || t == "float" then "the number ${toString v}"
    else if t == "bool" then (if v then "true" else "false")
    else if t == "set" then (if v ? outPath then "a derivation" else "an attribute set")
    else if t == "lambda" then "a function" else "a ${t}";
  typeNames = { string = "a string"; int = "an integer"; bool = "true or false";
                set = "an attribute set"; list = "a list"; null = "null"; };
  checkType = fn: arg: kinds: v:
    if builtins.elem (builtins.typeOf v) kinds then v
    else throw "dockerTools.${fn}: ${arg} must be ${builtins.concatStringsSep " or " (map (k: typeNames.${k}) kinds)}, got ${describe v}";
}
