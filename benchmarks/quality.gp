# Plots the curves of bench_quality's CSV into benchmarks/quality.png:
# precision at equal recall on qqp_dev, and hit rate / false-hit rate vs the
# threshold for each data set, raw cosine (dashed) against the verifier
# (solid). Usage, from the repository root:
#   build/bench_quality > benchmarks/results/bench_quality.csv
#   gnuplot -e "csv='benchmarks/results/bench_quality.csv'" benchmarks/quality.gp
if (!exists("csv")) csv = 'benchmarks/results/bench_quality.csv'
if (!exists("out")) out = 'benchmarks/quality.png'
set terminal pngcairo size 1400,1000 font ",11"
set output out
set datafile separator ","
sel(row, ds, sc) = sprintf("< awk -F, '$1==\"%s\" && $2==\"%s\" && $3==\"%s\"' %s", row, ds, sc, csv)
set multiplot layout 2,2 title "semcached hit quality: raw cosine (dashed) vs verifier (solid)"
set grid
set key bottom left

set title "precision at equal recall (qqp\\_dev, gptcache)"
set xlabel "recall (paraphrases served)"
set ylabel "precision"
set xrange [0:1]
set yrange [0:1]
plot sel("pr","qqp_dev","cosine") using 10:8 with linespoints dt 2 lc 1 title "qqp cosine", \
     sel("pr","qqp_dev","verify") using 10:8 with linespoints lc 1 title "qqp verifier", \
     sel("pr","gptcache","cosine") using 10:8 with linespoints dt 2 lc 2 title "gptcache cosine", \
     sel("pr","gptcache","verify") using 10:8 with linespoints lc 2 title "gptcache verifier"

set title "false-hit rate vs threshold"
set xlabel "threshold"
set ylabel "false-hit rate"
set xrange [0.5:0.99]
set yrange [0:*]
set key top right
plot sel("curve","qqp_dev","cosine") using 4:9 with lines dt 2 lc 1 title "qqp cosine", \
     sel("curve","qqp_dev","verify") using 4:9 with lines lc 1 title "qqp verifier", \
     sel("curve","banking77_faq","cosine") using 4:9 with lines dt 2 lc 3 title "banking77 FAQ cosine", \
     sel("curve","banking77_faq","verify") using 4:9 with lines lc 3 title "banking77 FAQ verifier", \
     sel("curve","lookalike","cosine") using 4:9 with lines dt 2 lc 4 title "look-alikes cosine", \
     sel("curve","lookalike","verify") using 4:9 with lines lc 4 title "look-alikes verifier"

set title "hit rate on true paraphrases (recall) vs threshold"
set ylabel "recall"
set yrange [0:1]
plot sel("curve","qqp_dev","cosine") using 4:10 with lines dt 2 lc 1 title "qqp cosine", \
     sel("curve","qqp_dev","verify") using 4:10 with lines lc 1 title "qqp verifier", \
     sel("curve","gptcache","cosine") using 4:10 with lines dt 2 lc 2 title "gptcache cosine", \
     sel("curve","gptcache","verify") using 4:10 with lines lc 2 title "gptcache verifier", \
     sel("curve","banking77_faq","cosine") using 4:10 with lines dt 2 lc 3 title "banking77 FAQ cosine", \
     sel("curve","banking77_faq","verify") using 4:10 with lines lc 3 title "banking77 FAQ verifier", \
     sel("curve","lookalike","cosine") using 4:10 with lines dt 2 lc 4 title "look-alike set cosine", \
     sel("curve","lookalike","verify") using 4:10 with lines lc 4 title "look-alike set verifier"

set title "precision of served hits vs threshold"
set ylabel "precision"
set yrange [0:1]
set key bottom right
plot sel("curve","qqp_dev","cosine") using 4:8 with lines dt 2 lc 1 title "qqp cosine", \
     sel("curve","qqp_dev","verify") using 4:8 with lines lc 1 title "qqp verifier", \
     sel("curve","banking77_faq","cosine") using 4:8 with lines dt 2 lc 3 title "banking77 FAQ cosine", \
     sel("curve","banking77_faq","verify") using 4:8 with lines lc 3 title "banking77 FAQ verifier", \
     sel("curve","gptcache","cosine") using 4:8 with lines dt 2 lc 2 title "gptcache cosine", \
     sel("curve","gptcache","verify") using 4:8 with lines lc 2 title "gptcache verifier"
unset multiplot
