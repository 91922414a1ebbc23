/* Reference bytes of /run/ostree/staged-deployment made by GLib's own serialiser with
 * the builder calls of libostree's ostree_sysroot_stage_tree_with_options (2026.4).
 * Built against the runtime libglib-2.0.so.0 only (no headers needed):
 *   cc -o ref staged-glib-ref.c -l:libglib-2.0.so.0 && ./ref [locked] [merge] [kargs] [extra]
 * prints the file as hex. */
#include <stdio.h>
#include <string.h>
#include <stddef.h>
typedef struct _GVariant GVariant;
typedef struct { size_t x[16]; } GVariantBuilder;
typedef struct _GVariantType GVariantType;
extern GVariantBuilder *g_variant_builder_new (const GVariantType *);
extern void g_variant_builder_init (GVariantBuilder *, const GVariantType *);
extern void g_variant_builder_add (GVariantBuilder *, const char *, ...);
extern GVariant *g_variant_builder_end (GVariantBuilder *);
extern GVariant *g_variant_new_string (const char *);
extern GVariant *g_variant_new_boolean (int);
extern GVariant *g_variant_new_strv (const char *const *, long);
extern GVariant *g_variant_ref_sink (GVariant *);
extern const void *g_variant_get_data (GVariant *);
extern size_t g_variant_get_size (GVariant *);

static GVariant *dep (const char *csum, int serial, const char *osname, const char *bootcsum)
{
  GVariantBuilder b;
  char name[128];
  snprintf (name, sizeof name, "%s.%d", csum, serial);
  g_variant_builder_init (&b, (const GVariantType *)"a{sv}");
  g_variant_builder_add (&b, "{sv}", "name", g_variant_new_string (name));
  g_variant_builder_add (&b, "{sv}", "osname", g_variant_new_string (osname));
  g_variant_builder_add (&b, "{sv}", "bootcsum", g_variant_new_string (bootcsum));
  return g_variant_builder_end (&b);
}

int main (int argc, char **argv)
{
  int locked = 0, merge = 0, kargs = 0, extra = 0;
  for (int i = 1; i < argc; i++)
    {
      locked |= !strcmp (argv[i], "locked");
      merge |= !strcmp (argv[i], "merge");
      kargs |= !strcmp (argv[i], "kargs");
      extra |= !strcmp (argv[i], "extra");
    }
  const char *c1 = "abababababababababababababababababababababababababababababababab";
  const char *c2 = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";
  GVariantBuilder *b = g_variant_builder_new ((const GVariantType *)"a{sv}");
  g_variant_builder_add (b, "{sv}", "target", dep (c1, 1, "testos", c2));
  if (locked)
    g_variant_builder_add (b, "{sv}", "locked", g_variant_new_boolean (1));
  if (merge)
    g_variant_builder_add (b, "{sv}", "merge-deployment", dep (c1, 0, "testos", c2));
  if (kargs)
    {
      const char *const k[] = { "root=/dev/vda", "quiet", NULL };
      g_variant_builder_add (b, "{sv}", "kargs", g_variant_new_strv (k, -1));
    }
  if (extra)
    {
      GVariantBuilder e;
      g_variant_builder_init (&e, (const GVariantType *)"a{ss}");
      g_variant_builder_add (&e, "{ss}", "x-options-source-tuned", "a b");
      g_variant_builder_add (b, "{sv}", "bootconfig-extra", g_variant_builder_end (&e));
    }
  GVariant *v = g_variant_ref_sink (g_variant_builder_end (b));
  const unsigned char *d = g_variant_get_data (v);
  for (size_t i = 0; i < g_variant_get_size (v); i++)
    printf ("%02x", d[i]);
  printf ("\n");
  return 0;
}
