# zsh-complete.zsh FPATH_DIR LINE: prints the candidates zsh's completion system offers for LINE, one per line.
#
# Completion only runs inside the line editor, so this drives an interactive `zsh -f -i` on a pseudo-terminal
# (zsh/zpty), loads compinit with FPATH_DIR first in $fpath, types LINE and a TAB, and wraps `compadd` to print
# every candidate it is given (matched against the word being completed, as compsys itself matches). Used by
# tests/tests/distribution.rs to run `kubectl-tprotect completion zsh` for real.
zmodload zsh/zpty || exit 3
fpath_dir=$1 line=$2
zpty z zsh -f -i
zpty -w z "PROMPT=; fpath=($fpath_dir \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'zstyle ":completion:*" list-grouped false; zstyle ":completion:*" insert-tab false'
# The markers are split in the typed text ("CA""ND") so that the terminal's echo of these lines never matches.
zpty -w z 'compadd() { if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi; typeset -a __hits; builtin compadd -A __hits "$@"; local h; for h in $__hits; do print -r -- "CA""ND:$h"; done; }'
zpty -w z 'comppostfuncs=(__done); __done() { print -r -- "CA""ND-END"; exit }'
zpty -w -n z "$line"$'\t'
out=
integer tries=0
while (( tries++ < 400 )); do
  if zpty -r -t z chunk 2>/dev/null; then
    out+=$chunk
    [[ $out == *CAND-END* ]] && break
  else
    sleep 0.05
  fi
done
zpty -d z
[[ $out == *CAND-END* ]] || { print -u2 "zsh-complete: no completion finished within 20 s for: $line"; exit 2 }
print -r -- "$out" | tr -d '\r' | sed -n 's/^.*CAND:\(.*\)$/\1/p' | sort -u
