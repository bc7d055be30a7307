{#-
  sql query: (node, component_id) for every node of an undirected graph, component_id being the
  smallest node of its connected component. `edges` is a relation or cte with columns
  (from_id, to_id). min-label propagation: each round only the nodes whose label just dropped
  pass it on, so the rounds are the component's diameter and the work is the edges they touch,
  not the pairs of the transitive closure. duckdb-only (`using key`, `recurring.`): a second
  dialect gets its own version of this macro.
-#}
{% macro connected_components(edges) -%}
    {{ return(adapter.dispatch('connected_components')(edges)) }}
{%- endmacro %}

{% macro default__connected_components(edges) -%}
    with recursive
    undirected as (
        select from_id, to_id from {{ edges }}
        union
        select to_id, from_id from {{ edges }}
    ),

    graph_nodes as (
        select distinct from_id as node from undirected
    ),

    labels (node, component_id) using key (node) as (
        select node, node from graph_nodes
        union
        select undirected.to_id, min(labels.component_id)
        from labels
        inner join undirected on labels.node = undirected.from_id
        inner join recurring.labels as current_labels on undirected.to_id = current_labels.node
        group by undirected.to_id, current_labels.component_id
        having min(labels.component_id) < current_labels.component_id
    )

    select node, component_id from labels
{%- endmacro %}
