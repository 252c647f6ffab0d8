# Executed SASS opcode mix from an Nsight Compute source page (ncu --section SourceCounters --page source --print-source sass > sass.txt): awk -f experiments/sass-mix.awk sass.txt | sort -rn
/^0x/ { i=2; if ($i ~ /^@/) i++; op=$i; i++;
  while ($i ~ /,$/) i++;
  if ($i !~ /^[0-9]+$/) i++;
  n=$(i+3); gsub(",","",n); split(op,a,"."); cnt[a[1]]+=n; tot+=n; st[a[1]]++ }
END { for (k in cnt) printf "%12d %5.1f%% %5d %s\n", cnt[k], 100*cnt[k]/tot, st[k], k; printf "%12d total warp instructions\n", tot }
