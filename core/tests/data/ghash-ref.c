/* Prints the iteration order of a GHashTable (g_str_hash, g_str_equal) after
 * g_hash_table_replace of each argument in turn, as ostree-bootconfig-parser.c fills
 * one. Built against the runtime libglib-2.0.so.0 only (no headers):
 *   cc -o ghash-ref ghash-ref.c -l:libglib-2.0.so.0 */
#include <stdio.h>
#include <string.h>
typedef struct _GHashTable GHashTable;
typedef struct { void *a, *b, *c; int d; int e; void *f; } GHashTableIter;
extern GHashTable *g_hash_table_new (unsigned (*)(const void*), int (*)(const void*, const void*));
extern int g_hash_table_replace (GHashTable *, void *, void *);
extern unsigned g_str_hash (const void *);
extern int g_str_equal (const void *, const void *);
extern void g_hash_table_iter_init (GHashTableIter *, GHashTable *);
extern int g_hash_table_iter_next (GHashTableIter *, void **, void **);
int main (int argc, char **argv)
{
  GHashTable *t = g_hash_table_new (g_str_hash, g_str_equal);
  for (int i = 1; i < argc; i++)
    g_hash_table_replace (t, argv[i], argv[i]);
  GHashTableIter it; void *k, *v;
  g_hash_table_iter_init (&it, t);
  while (g_hash_table_iter_next (&it, &k, &v))
    printf ("%s ", (char *)k);
  printf ("\n");
  return 0;
}
